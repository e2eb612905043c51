"""aigc-engine: a plugin-based content-generation engine with a C++ core."""
