"""mmgen tests. ``tests.strategies`` holds the hypothesis strategies shared by every test module."""
