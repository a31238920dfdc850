"""What the deployment tests share: the repository's paths and spin.toml's variables."""
import pathlib
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[2]
SPINKUBE = ROOT / "deploy" / "spinkube"
WORKFLOW = ROOT / ".github" / "workflows" / "deploy.yml"
DEPLOY_SCRIPT = ROOT / "scripts" / "deploy.sh"


def spin_variables():
    """spin.toml's [variables]: name -> its declaration (required, secret, default)."""
    with open(ROOT / "spin.toml", "rb") as handle:
        return tomllib.load(handle)["variables"]
