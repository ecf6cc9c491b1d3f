//! Nothing here: the crate exists for its tests, which use swapfault as a
//! user's crate would, through its public API only.
