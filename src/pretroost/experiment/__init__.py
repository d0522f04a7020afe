"""The paper's experiment, beside the library: the benchmark matrix and its presets (``bench``),
strategy names (``strategies``), the report and leaderboard, the Matbench convergence check, the
throughput benchmark (``speed``) and the structure-teacher probe; each reached through the CLI."""
