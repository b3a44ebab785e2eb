//! Classifying console logs and vmcore-dmesg into findings with evidence and suggested recipes.
