//! curvature-tensor
