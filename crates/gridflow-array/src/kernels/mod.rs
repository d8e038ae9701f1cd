//! Chunk kernels (in progress).
