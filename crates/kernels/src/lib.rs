//! curvature-kernels
