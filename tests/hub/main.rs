//! The hub and its store: ids, room clocks, history depth, delivery to the sides, durable side
//! state.

mod footprint_store;
mod store;
mod trim_steps;
