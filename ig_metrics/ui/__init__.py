"""The live terminal table of a run."""
