"""Local stand-ins for the shared services (`make up` / `make down`), all on loopback.

- PostgreSQL from Debian's packages, run by an unprivileged user (`nobody` when called as root:
  PostgreSQL refuses to run as root), with the databases `mlflow`, `optuna`, `predictions` and
  `monitoring`;
- an S3-compatible server (moto's server mode) with the bucket `churnlab`;
- an MLflow tracking server: PostgreSQL backend store, artifacts proxied to `s3://churnlab/mlflow`.

`up` writes `.standins/env.sh`, the environment that switches the project onto them (source it);
`down` stops them and deletes their data. Ports: `STANDINS_PG_PORT` (55432), `STANDINS_S3_PORT`
(59000), `STANDINS_MLFLOW_PORT` (55000).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent
PG_BINS = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
DATABASES = ("mlflow", "optuna", "predictions", "monitoring")
BUCKET = "churnlab"
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
PORTS = {
    "pg": ("STANDINS_PG_PORT", 55432),
    "s3": ("STANDINS_S3_PORT", 59000),
    "mlflow": ("STANDINS_MLFLOW_PORT", 55000),
}


def free_port() -> int:
    "A TCP port on loopback that nothing listens on now."
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_server_user() -> list[str]:
    "The command prefix that runs PostgreSQL's binaries unprivileged (root hands them to `nobody`)."
    return ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []


def start_postgres(data_dir: Path, port: int, databases: tuple[str, ...]) -> str:
    "Initialise and start a PostgreSQL cluster in `data_dir` (trust auth, loopback), create `databases`; its URL."
    if not PG_BINS:
        raise SystemExit("PostgreSQL server binaries missing: run `make test-deps` (Debian package `postgresql`)")
    bin_dir, run_as = PG_BINS[-1], _as_server_user()
    data_dir.mkdir(parents=True, exist_ok=True)
    if run_as:
        shutil.chown(data_dir, "nobody", "nogroup")
    initdb = [bin_dir / "initdb", "-D", data_dir / "db", "-A", "trust", "-U", "postgres", "--no-sync"]
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {data_dir} -c fsync=off"
    pg_ctl = [bin_dir / "pg_ctl", "-D", data_dir / "db", "-l", data_dir / "log", "-o", options, "-w", "start"]
    createdb = [bin_dir / "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
    for command in (initdb, pg_ctl, *([*createdb, database] for database in databases)):
        result = subprocess.run([*run_as, *command], capture_output=True, text=True)
        if result.returncode != 0:
            log = (data_dir / "log").read_text()[-2000:] if (data_dir / "log").exists() else ""
            raise SystemExit(f"PostgreSQL: {Path(command[0]).name} failed:\n{result.stdout}{result.stderr}{log}")
    return f"postgresql+psycopg://postgres@127.0.0.1:{port}"


def _pg_ctl(data_dir: Path, *args: str) -> None:
    command = [PG_BINS[-1] / "pg_ctl", "-D", data_dir / "db", "-l", data_dir / "log", *args]
    result = subprocess.run([*_as_server_user(), *command], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"PostgreSQL: pg_ctl {args[-1]} failed:\n{result.stdout}{result.stderr}")


def pause_postgres(data_dir: Path) -> None:
    "Stop the cluster in `data_dir` at once (an outage), keeping its data."
    _pg_ctl(data_dir, "-m", "immediate", "-w", "stop")


def resume_postgres(data_dir: Path, port: int) -> None:
    "Start a paused cluster again on `port`."
    _pg_ctl(data_dir, "-o", f"-c listen_addresses=127.0.0.1 -p {port} -k {data_dir} -c fsync=off", "-w", "start")


def stop_postgres(data_dir: Path) -> None:
    "Stop the cluster in `data_dir` (immediately) and delete it."
    if PG_BINS and (data_dir / "db").exists():
        stop = [PG_BINS[-1] / "pg_ctl", "-D", data_dir / "db", "-m", "immediate", "stop"]
        subprocess.run([*_as_server_user(), *stop], capture_output=True)
    shutil.rmtree(data_dir, ignore_errors=True)


def _spawn(cmd: list[str], log: Path, env: dict[str, str]) -> int:
    "Start a server in its own process group, output to `log`; its pid."
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True).pid


def _wait_for(url: str, log: Path, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"{url} did not answer within {seconds:.0f} s; its log ({log}):\n{log.read_text()[-3000:]}")


def environment(ports: dict[str, int]) -> dict[str, str]:
    "The variables that switch the project onto the stand-ins."
    pg = f"postgresql+psycopg://postgres@127.0.0.1:{ports['pg']}"
    return {
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{ports['mlflow']}",
        "CHURNLAB_TUNE_STORAGE": f"{pg}/optuna",
        "CHURNLAB_PREDICTION_LOG_URL": f"{pg}/predictions",
        "CHURNLAB_MONITORING_HISTORY_URL": f"{pg}/monitoring",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{ports['s3']}",
        **S3_CREDENTIALS,
    }


def s3_client(variables: dict[str, str]):
    "A boto3 S3 client for the stand-in's endpoint and credentials (the variables of `environment`)."
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=variables["AWS_ENDPOINT_URL"],
        region_name=variables["AWS_DEFAULT_REGION"],
        aws_access_key_id=variables["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=variables["AWS_SECRET_ACCESS_KEY"],
    )


def up(root: Path) -> dict[str, str]:
    "Start the three stand-ins; write `.standins/env.sh` and `.standins/state.json`."
    state_dir = root / ".standins"
    if (state_dir / "state.json").exists():
        raise SystemExit(f"stand-ins already up (see {state_dir}/state.json): run `make down` first")
    state_dir.mkdir(exist_ok=True)
    ports = {name: int(os.environ.get(var, default)) for name, (var, default) in PORTS.items()}
    # PostgreSQL's data must be reachable by its unprivileged user: a folder of its own under /tmp.
    pg_dir = (
        Path(tempfile.mkdtemp(prefix="churnlab-standins-pg-", dir="/tmp")) if os.geteuid() == 0 else state_dir / "pg"
    )
    state = {"ports": ports, "pg_dir": str(pg_dir), "pids": []}

    def record(pid: int | None = None) -> None:  # written before each start, so `down` can undo a failed `up`
        state["pids"] += [pid] if pid else []
        (state_dir / "state.json").write_text(json.dumps(state))

    record()
    pg = start_postgres(pg_dir, ports["pg"], DATABASES)
    env = {**os.environ, **environment(ports)}
    s3_log, mlflow_log = state_dir / "s3.log", state_dir / "mlflow.log"
    record(_spawn([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(ports["s3"])], s3_log, env))
    _wait_for(f"{env['AWS_ENDPOINT_URL']}/moto-api/", s3_log)
    s3_client(env).create_bucket(Bucket=BUCKET)
    mlflow = [
        str(BIN / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(ports["mlflow"]),
        "--workers",
        "2",
        "--backend-store-uri",
        f"{pg}/mlflow",
        "--artifacts-destination",
        f"s3://{BUCKET}/mlflow",
    ]
    record(_spawn(mlflow, mlflow_log, {**env, "MLFLOW_S3_ENDPOINT_URL": env["AWS_ENDPOINT_URL"]}))
    _wait_for(f"{env['MLFLOW_TRACKING_URI']}/health", mlflow_log, seconds=180)
    variables = environment(ports)
    lines = [f"export {k}={v}" for k, v in variables.items()]
    (state_dir / "env.sh").write_text(
        "# written by `make up`: source it to use the local stand-ins\n" + "\n".join(lines) + "\n"
    )
    return variables


def down(root: Path) -> None:
    "Stop whatever `up` started and delete its data (nothing to do when nothing is up)."
    state_dir = root / ".standins"
    if not (state_dir / "state.json").exists():
        return
    state = json.loads((state_dir / "state.json").read_text())
    for pid in state["pids"]:
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    stop_postgres(Path(state["pg_dir"]))
    shutil.rmtree(state_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--root", type=Path, default=Path.cwd())
    args = parser.parse_args(argv)
    if args.action == "down":
        down(args.root)
        print("stand-ins stopped")
        return
    try:
        variables = up(args.root)
    except BaseException:
        down(args.root)
        raise
    print("stand-ins up; switch the project onto them with: source .standins/env.sh")
    for key, value in variables.items():
        print(f"  {key}={value}")


if __name__ == "__main__":
    main()
