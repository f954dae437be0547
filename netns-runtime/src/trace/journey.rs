//! One flow's path, merged from captures, trace events and conntrack entries (to be written).
