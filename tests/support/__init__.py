"""Test helpers shared across the suite: real git repos, real servers, fresh processes."""
