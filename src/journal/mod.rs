//! Every write into the target: confined path resolution, backup, atomic replace, undo.
