//! curvature
