"""What the deployment tests share: the repository's paths and spin.toml's variables."""
import pathlib
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[2]
SPINKUBE = ROOT / "deploy" / "spinkube"
WORKFLOW = ROOT / ".github" / "workflows" / "deploy.yml"
DEPLOY_SCRIPT = ROOT / "scripts" / "deploy.sh"
SPIN_VERSION_SCRIPT = ROOT / "scripts" / "spin-version.sh"


def _spin_version_script(subcommand):
    import subprocess
    text = subprocess.run([SPIN_VERSION_SCRIPT, subcommand], check=True, capture_output=True,
                          text=True).stdout.strip()
    return tuple(int(part) for part in text.split("."))


def min_spin_version():
    """The oldest Spin the app runs on, as scripts/spin-version.sh states it: (x, y, z)."""
    return _spin_version_script("min")


def min_spin_cli_version():
    """The oldest Spin CLI that builds and deploys the app (the workflow's pin), as
    scripts/spin-version.sh states it: (x, y, z)."""
    return _spin_version_script("cli-min")


def spin_variables():
    """spin.toml's [variables]: name -> its declaration (required, secret, default)."""
    with open(ROOT / "spin.toml", "rb") as handle:
        return tomllib.load(handle)["variables"]
