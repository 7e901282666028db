//! cross-cutting test helpers
