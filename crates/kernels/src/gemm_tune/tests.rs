use super::*;

fn shape(dtype: Dtype, m: usize, n: usize, k: usize, batch: usize) -> GemmShape {
    GemmShape {
        dtype,
        precision: Precision::Ieee,
        m,
        n,
        k,
        batch,
        trans_a: false,
        trans_b: true,
    }
}

fn key(shape: GemmShape) -> TuneKey {
    TuneKey {
        gpu: GpuIdentity {
            name: "NVIDIA H200".to_string(),
            sm_count: 132,
            arch: "sm_90".to_string(),
        },
        shape,
    }
}

fn temp_file(tag: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("curvature-gemm-tune-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir.join(FILE_NAME)
}

/// A timer that hands out `times` by candidate index and records what it timed.
fn scripted(
    times: Vec<f64>,
    timed: &mut Vec<GemmPlan>,
) -> impl FnMut(&GemmPlan) -> Result<f64, ()> + '_ {
    move |plan| {
        let ms = times[timed.len() % times.len()];
        timed.push(*plan);
        Ok(ms)
    }
}

fn never_timed(_: &GemmPlan) -> Result<f64, ()> {
    panic!("a cached key must not be timed")
}

#[test]
fn candidates_start_with_the_table_and_keep_every_split_busy() {
    let shapes = [
        shape(Dtype::F32, 10, 10, 1000, 1),
        shape(Dtype::F32, 10, 10, 1000, 141),
        shape(Dtype::F64, 80, 70, 256, 1),
        shape(Dtype::F32, 256, 256, 65536, 1),
        shape(Dtype::F32, 4096, 4096, 4096, 1),
        shape(Dtype::F32, 7, 3, 0, 2),
        shape(Dtype::F64, 4000, 4000, 1 << 20, 1),
    ];
    for s in shapes {
        let plans = candidates(&s, 132);
        assert_eq!(
            plans[0],
            select_gemm(s.dtype, s.m, s.n, s.k, s.batch, 132),
            "{s:?}"
        );
        for (i, plan) in plans.iter().enumerate() {
            assert!(!plans[..i].contains(plan), "{s:?}: {plan:?} twice");
            let len = plan.split_len(s.dtype, s.k);
            assert!(
                (plan.splits - 1) * len < s.k.max(1),
                "{s:?}: empty split in {plan:?}"
            );
            assert!(plan.splits * len >= s.k, "{s:?}: {plan:?} misses k");
            let workspace = plan.splits * s.batch * s.m * s.n;
            assert!(
                plan.splits == 1 || workspace <= SPLIT_WORKSPACE_ELEMENTS,
                "{s:?}: {plan:?}"
            );
            assert_eq!(
                *plan,
                plan_for_tile(s.dtype, plan.tile, plan.splits, s.m, s.n, s.batch, 132)
            );
        }
    }
    // A tiny output with a long k: the small tile's 32 slices split 1, 2, 4, … 32 ways; the
    // large tile's 63 slices in whole slices per split, from 1 to 63 splits.
    let plans = candidates(&shape(Dtype::F32, 10, 10, 1000, 1), 132);
    let splits = |tile: GemmTile| -> Vec<usize> {
        let mut s: Vec<usize> = plans
            .iter()
            .filter(|p| p.tile == tile)
            .map(|p| p.splits)
            .collect();
        s.sort();
        s
    };
    assert_eq!(splits(GemmTile::Small), [1, 2, 4, 8, 16, 32]);
    assert_eq!(splits(GemmTile::Large), [1, 3, 5, 9, 21, 63]);
    // A large square product fills the GPU without splits.
    let plans = candidates(&shape(Dtype::F32, 4096, 4096, 4096, 1), 132);
    assert!(plans.iter().all(|p| p.splits == 1), "{plans:?}");
    assert_eq!(plans.len(), 2);
}

#[test]
fn the_fastest_candidate_wins_and_ties_keep_the_earlier_one() {
    let k = key(shape(Dtype::F32, 10, 10, 1000, 1));
    let plans = candidates(&k.shape, 132);
    assert!(plans.len() > 3);
    let mut tuner = GemmTuner::in_memory();
    let mut times = vec![5.0; plans.len()];
    times[3] = 1.0;
    let mut timed = Vec::new();
    let plan = tuner.choose(&k, scripted(times, &mut timed)).unwrap();
    assert_eq!(timed, plans, "every candidate timed once, in order");
    assert_eq!(plan, plans[3]);
    assert_eq!(tuner.entry(&k).map(|c| c.ms), Some(1.0));
    // Again: the kept choice, no timing.
    assert_eq!(tuner.choose(&k, never_timed).unwrap(), plans[3]);

    // Equal times keep the table's plan; NaN and negative times never win.
    let k2 = key(shape(Dtype::F64, 80, 70, 256, 1));
    let plans = candidates(&k2.shape, 132);
    let mut timed = Vec::new();
    let mut times = vec![2.0; plans.len()];
    times[1] = f64::NAN;
    times[2] = -1.0;
    let plan = tuner.choose(&k2, scripted(times, &mut timed)).unwrap();
    assert_eq!(plan, plans[0]);

    // No usable time: the table's plan, nothing kept.
    let k3 = key(shape(Dtype::F32, 33, 7, 129, 3));
    let mut timed = Vec::new();
    let plan = tuner
        .choose(&k3, scripted(vec![f64::INFINITY], &mut timed))
        .unwrap();
    assert_eq!(plan, candidates(&k3.shape, 132)[0]);
    assert_eq!(tuner.entry(&k3), None);

    // A timer's error is returned, nothing kept.
    let k4 = key(shape(Dtype::F32, 64, 64, 64, 1));
    assert_eq!(
        tuner.choose(&k4, |_| Err::<f64, _>("launch failed")),
        Err("launch failed")
    );
    assert_eq!(tuner.entry(&k4), None);
}

#[test]
fn choices_round_trip_through_the_file_and_decide_later_processes() {
    let path = temp_file("round-trip");
    let keys = [
        key(shape(Dtype::F32, 10, 10, 1000, 1)),
        key(shape(Dtype::F64, 10, 256, 4096, 1)),
        key(GemmShape {
            precision: Precision::Tf32,
            trans_a: true,
            ..shape(Dtype::F32, 256, 256, 65536, 1)
        }),
    ];
    let mut chosen = Vec::new();
    {
        let mut tuner = GemmTuner::with_file(&path);
        assert!(tuner.is_empty());
        for (i, k) in keys.iter().enumerate() {
            let n = candidates(&k.shape, 132).len();
            // The last candidate is the fastest.
            let times: Vec<f64> = (0..n).map(|j| (n - j + i) as f64).collect();
            let mut timed = Vec::new();
            chosen.push(tuner.choose(k, scripted(times, &mut timed)).unwrap());
            assert_eq!(chosen[i], *candidates(&k.shape, 132).last().unwrap());
        }
    }
    // Another tuner on the same file: the same plans, never timed; twice, the same answer.
    for _ in 0..2 {
        let mut later = GemmTuner::with_file(&path);
        assert_eq!(later.len(), keys.len());
        for (k, plan) in keys.iter().zip(&chosen) {
            assert_eq!(later.choose(k, never_timed).unwrap(), *plan);
        }
    }
    // Another GPU is another key.
    let mut other = keys[0].clone();
    other.gpu.sm_count = 108;
    assert_eq!(GemmTuner::with_file(&path).lookup(&other), None);
    // Saving from a tuner that knows fewer keys keeps the file's other entries.
    let mut small = GemmTuner::in_memory();
    small.file = Some(path.clone());
    small.insert(
        keys[0].clone(),
        TunedChoice {
            tile: GemmTile::Small,
            splits: 1,
            ms: 0.5,
        },
    );
    small.save();
    let merged = GemmTuner::with_file(&path);
    assert_eq!(merged.len(), keys.len());
    assert_eq!(
        merged.entry(&keys[0]).map(|c| (c.tile, c.splits)),
        Some((GemmTile::Small, 1))
    );
    let _ = fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn corrupt_foreign_or_oversized_files_are_ignored() {
    let path = temp_file("corrupt");
    let k = key(shape(Dtype::F32, 10, 10, 1000, 1));
    let mut tuner = GemmTuner::with_file(&path);
    let mut timed = Vec::new();
    let n = candidates(&k.shape, 132).len();
    tuner
        .choose(
            &k,
            scripted((0..n).map(|j| (n - j) as f64).collect(), &mut timed),
        )
        .unwrap();
    let good = fs::read(&path).unwrap();
    assert_eq!(GemmTuner::with_file(&path).len(), 1);
    // A flipped bit anywhere, and every truncation.
    for i in [0, 5, MAGIC.len() + 1, good.len() / 2, good.len() - 3] {
        let mut bad = good.clone();
        bad[i] ^= 0x04;
        fs::write(&path, &bad).unwrap();
        assert!(GemmTuner::with_file(&path).is_empty(), "flipped byte {i}");
    }
    for len in 0..good.len() {
        fs::write(&path, &good[..len]).unwrap();
        assert!(GemmTuner::with_file(&path).is_empty(), "truncated to {len}");
    }
    // Another version, with a correct checksum.
    let text = String::from_utf8(good.clone()).unwrap();
    let body = text[..text.rfind("checksum").unwrap()].replacen(MAGIC, "curvature-gemm-tune 2", 1);
    let foreign = format!("{body}checksum {:016x}\n", fnv1a64(body.as_bytes()));
    fs::write(&path, foreign).unwrap();
    assert!(GemmTuner::with_file(&path).is_empty());
    // A well-formed file whose lines are not entries.
    for line in [
        "a\tb\n",
        "x\t132\tsm_90\tf32\tieee\t1\t1\t1\t1\t2\t0\tsmall\t1\t1e0\n",
    ] {
        let body = format!("{MAGIC}\n{line}");
        fs::write(
            &path,
            format!("{body}checksum {:016x}\n", fnv1a64(body.as_bytes())),
        )
        .unwrap();
        assert!(GemmTuner::with_file(&path).is_empty(), "{line:?}");
    }
    // Binary garbage, and a file over the size limit.
    fs::write(&path, [0xffu8, 0xfe, 0, 1, 2]).unwrap();
    assert!(GemmTuner::with_file(&path).is_empty());
    let mut big = good.clone();
    big.resize(MAX_FILE_BYTES as usize + 1, b'\n');
    fs::write(&path, big).unwrap();
    assert!(GemmTuner::with_file(&path).is_empty());
    // A directory where the file should be: nothing read, nothing written, no panic.
    let _ = fs::remove_file(&path);
    fs::create_dir_all(&path).unwrap();
    let mut blocked = GemmTuner::with_file(&path);
    let plan = blocked
        .choose(&k, scripted(vec![1.0], &mut Vec::new()))
        .unwrap();
    assert_eq!(plan, candidates(&k.shape, 132)[0]);
    let _ = fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn an_entry_that_is_not_a_candidate_is_tuned_again() {
    let k = key(shape(Dtype::F32, 4096, 4096, 4096, 1));
    let mut tuner = GemmTuner::in_memory();
    // 4096³ fills the GPU: a split plan is not among its candidates.
    tuner.insert(
        k.clone(),
        TunedChoice {
            tile: GemmTile::Large,
            splits: 8,
            ms: 0.1,
        },
    );
    assert_eq!(tuner.lookup(&k), None);
    let mut timed = Vec::new();
    let plan = tuner
        .choose(&k, scripted(vec![3.0, 2.0], &mut timed))
        .unwrap();
    assert_eq!(timed.len(), 2);
    assert_eq!((plan.tile, plan.splits), (GemmTile::Small, 1));
}
