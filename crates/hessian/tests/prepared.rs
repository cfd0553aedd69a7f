//! The prepared operator (loss and gradient graph recorded once, one leaf per parameter)
//! equals the unprepared `hvp_batch` (recorded per call, over the flat θ), and replaying it
//! changes nothing.

mod common;

use common::{load, rel_err, GOLDEN};
use curvature_hessian::{hvp_batch, LinearOperator, PreparedHvp};
use curvature_nn::Module;

#[test]
fn prepared_hvp_equals_unprepared_hvp_batch_cpu() {
    for name in GOLDEN {
        let file = load(name);
        let v = file.tensor("V").unwrap();
        let op = PreparedHvp::for_model(&file.model, file.loss, &file.x, &file.y).unwrap();
        let nodes = op.recorded_nodes();
        let prepared = op.apply_batch(v).unwrap();
        let theta = file.model.flat_params().unwrap();
        let unprepared =
            hvp_batch(|t| file.loss_of(&t[0]), &[theta], std::slice::from_ref(v)).unwrap();
        let err = rel_err(&prepared, &unprepared[0]);
        assert!(err <= 1e-12, "{name}: prepared vs unprepared {err:e}");
        let again = op.apply_batch(v).unwrap();
        assert_eq!(
            again.to_f64s().unwrap(),
            prepared.to_f64s().unwrap(),
            "{name}"
        );
        assert_eq!(op.recorded_nodes(), nodes, "{name}: replay recorded nodes");
        let golden = rel_err(&prepared, file.tensor("hvps").unwrap());
        assert!(golden <= 1e-10, "{name}: vs golden {golden:e}");
    }
}
