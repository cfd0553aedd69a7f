//! curvature-tape
