"""Run a study sweep: data volume × model size × permutation × seed, tracked in MLflow.

Laptop (embedded local Ray, SQLite MLflow store, tiny built-in model and data; offline, minutes):
    python experiments/sweep.py
    python experiments/sweep.py --config experiments/configs/offline.yaml --set grid.seed=[0,1]

Cluster (see cluster/README.md); first, the trial table and a GPU-hours estimate, with nothing started:
    python experiments/sweep.py --config experiments/configs/<study>.yaml --dry-run
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \
        python experiments/sweep.py --config experiments/configs/<study>.yaml
"""

import sys

try:
    from dynamics.cli import main
except KeyboardInterrupt:  # Ctrl-C while Python imports: nothing started yet, so nothing to clean up
    print("interrupted while starting; nothing had started", file=sys.stderr)
    sys.exit(130)

if __name__ == "__main__":
    sys.exit(main(["sweep", *sys.argv[1:]]))
