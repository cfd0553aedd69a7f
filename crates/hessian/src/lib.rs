//! curvature-hessian
