"""What the deployment tests share: the repository's paths and spin.toml's variables."""
import pathlib
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[2]
SPINKUBE = ROOT / "deploy" / "spinkube"
WORKFLOW = ROOT / ".github" / "workflows" / "deploy.yml"
DEPLOY_SCRIPT = ROOT / "scripts" / "deploy.sh"
SPIN_VERSION_SCRIPT = ROOT / "scripts" / "spin-version.sh"


def min_spin_version():
    """The oldest Spin the app runs on, as scripts/spin-version.sh states it: (x, y, z)."""
    import subprocess
    text = subprocess.run([SPIN_VERSION_SCRIPT, "min"], check=True, capture_output=True,
                          text=True).stdout.strip()
    return tuple(int(part) for part in text.split("."))


def spin_variables():
    """spin.toml's [variables]: name -> its declaration (required, secret, default)."""
    with open(ROOT / "spin.toml", "rb") as handle:
        return tomllib.load(handle)["variables"]
