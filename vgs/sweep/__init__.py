"""The Ray side of vgs: a sweep's spec (spec), its options (options), the Ray Tune wiring (tune_setup),
one trial (trial), the halving scheduler (halving), MLflow tracking (tracking), terminal progress
(output), the plan without Ray (dry_run), Ray's storage (storage), the phases and summary (phases),
the driver (driver) and its command line (cli).  Only this subpackage imports Ray."""
