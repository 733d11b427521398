"""Many runs: grids, sweeps (local or Dask), seeds aggregated and compared, the closed forms, the paper's study."""
