"""The Ray side of vgs: a sweep's spec (spec), its options (options), the Ray Tune wiring (tune_setup),
one trial (trial), the halving scheduler (halving), MLflow tracking (tracking, tracking_setup), terminal progress
(output), the plan without Ray (dry_run), Ray's storage (storage), the phases and summary (phases),
starting Ray on loopback or joining a cluster (ray_start), the driver (driver), its command line
(cli) and its per-trial cost (overhead).  Only this subpackage imports Ray."""
