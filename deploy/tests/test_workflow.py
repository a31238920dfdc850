""".github/workflows/deploy.yml against spin.toml and scripts/deploy.sh: what actionlint
cannot know. Run: python3 -m unittest discover -s deploy/tests"""
import re
import unittest

import yaml

from common import min_spin_cli_version, min_spin_version, WORKFLOW, spin_variables

TOKEN_SECRETS = {"SPIN_AKA_ACCESS_TOKEN": "${{ secrets.SPIN_AKA_ACCESS_TOKEN }}",
                 "FERMYON_CLOUD_TOKEN": "${{ secrets.FERMYON_CLOUD_TOKEN }}"}


def load_workflow():
    with open(WORKFLOW) as handle:
        # PyYAML reads the key `on` as the boolean True (YAML 1.1).
        workflow = yaml.safe_load(handle)
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow


def evaluate(expression, contexts):
    """A GitHub Actions expression of literals, context properties, ==, !=, && and || (with
    their short-circuit values and case-insensitive string comparison), as the runner
    evaluates it."""
    inner = re.fullmatch(r"\$\{\{(.*)\}\}", expression.strip(), re.S).group(1)
    tokens = re.findall(r"'(?:[^']|'')*'|&&|\|\||==|!=|[A-Za-z_][\w.-]*|\S", inner)

    def value(token):
        if token.startswith("'"):
            return token[1:-1].replace("''", "'")
        node = contexts
        for part in token.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return node

    def parse(position, level):
        if level == 3:
            return value(tokens[position]), position + 1
        operator = ("||", "&&", ("==", "!="))[level]
        left, position = parse(position, level + 1)
        while position < len(tokens) and tokens[position] in operator:
            op = tokens[position]
            right, position = parse(position + 1, level + 1)
            if op == "||":
                left = left if left else right
            elif op == "&&":
                left = right if left else left
            else:
                same = str(left or "").lower() == str(right or "").lower()
                left = same if op == "==" else not same
        return left, position

    result, end = parse(0, 0)
    assert end == len(tokens), f"cannot evaluate {expression!r}"
    return result


def step_running(job, command):
    steps = [step for step in job["steps"] if command in step.get("run", "")]
    if len(steps) != 1:
        raise AssertionError(f"{len(steps)} steps run {command!r}")
    return steps[0]


class DeployWorkflow(unittest.TestCase):
    def setUp(self):
        self.workflow = load_workflow()
        (self.job,) = self.workflow["jobs"].values()
        self.env = self.job["env"]

    def index_of(self, predicate, what):
        found = [i for i, step in enumerate(self.job["steps"]) if predicate(step)]
        self.assertEqual(len(found), 1, what)
        return found[0]

    def test_runs_on_a_push_to_main_and_on_demand(self):
        self.assertEqual(self.workflow["on"]["push"]["branches"], ["main"])
        target = self.workflow["on"]["workflow_dispatch"]["inputs"]["target"]
        self.assertEqual(target["type"], "choice")
        self.assertLessEqual({"aka", "cloud"}, set(target["options"]))
        self.assertNotIn(target["default"], {"aka", "cloud"}, "a manual run follows DEPLOY_TARGET by default")

    def test_deploy_target_sets_the_plugin_aka_by_default(self):
        expression = self.env["SPIN_DEPLOY_PLUGIN"]
        default_input = self.workflow["on"]["workflow_dispatch"]["inputs"]["target"]["default"]
        cases = [
            ("push", None, None, "aka"),
            ("push", None, "cloud", "cloud"),
            ("push", None, "aka", "aka"),
            ("workflow_dispatch", default_input, None, "aka"),
            ("workflow_dispatch", default_input, "cloud", "cloud"),
            ("workflow_dispatch", "aka", "cloud", "aka"),
            ("workflow_dispatch", "cloud", None, "cloud"),
        ]
        for event, chosen, variable, plugin in cases:
            with self.subTest(event=event, input=chosen, DEPLOY_TARGET=variable):
                contexts = {"github": {"event_name": event},
                            "inputs": {"target": chosen} if chosen else {},
                            "vars": {"DEPLOY_TARGET": variable} if variable else {}}
                self.assertEqual(evaluate(expression, contexts), plugin)

    def test_every_deploy_script_step_gets_the_token_secret_of_each_target(self):
        steps = [step for step in self.job["steps"] if "scripts/deploy.sh" in step.get("run", "")]
        self.assertEqual(len(steps), 3, "check, login, deploy")
        for step in steps:
            for name, source in TOKEN_SECRETS.items():
                self.assertEqual(step.get("env", {}).get(name), source, f"{step['name']}: {name}")
        for name in TOKEN_SECRETS:
            self.assertNotIn(name, self.env, "tokens only where a step needs them")

    def test_steps_check_build_log_in_migrate_then_deploy(self):
        runs = lambda text: lambda step: text in step.get("run", "")
        order = [
            self.index_of(runs("scripts/deploy.sh --check"), "check"),
            self.index_of(runs("wasm32-wasip2"), "Rust"),
            self.index_of(lambda step: "spin/setup@" in step.get("uses", ""), "Spin"),
            self.index_of(runs("spin plugins install"), "plugin"),
            self.index_of(runs("spin build"), "build"),
            self.index_of(runs("scripts/deploy.sh --login"), "login"),
            self.index_of(runs("scripts/migrate.sh"), "migrations"),
            self.index_of(runs("scripts/deploy.sh --no-build"), "deploy"),
        ]
        self.assertEqual(order, sorted(order))

    def test_a_failed_migration_stops_the_deploy(self):
        step = step_running(self.job, "scripts/migrate.sh")
        self.assertIn("secrets.", step["env"]["MIGRATION_DB_URL"])
        for later in self.job["steps"]:
            self.assertNotIn("continue-on-error", later, later.get("name"))
            self.assertFalse(re.search(r"always\(\)|failure\(\)|cancelled\(\)", str(later.get("if", ""))),
                             later.get("name"))

    def test_spin_is_pinned_to_a_release(self):
        (setup,) = [step for step in self.job["steps"] if "spin/setup@" in step.get("uses", "")]
        self.assertTrue(setup["uses"].startswith("spinframework/actions/spin/setup@"))
        self.assertRegex(setup["with"]["version"], r"^v\d+\.\d+\.\d+$")
        self.assertNotIn("plugins", setup["with"], "plugins are installed at fixed versions")

    def test_the_pinned_spin_is_a_release_at_least_the_clis_minimum(self):
        # The pinned Spin only builds and deploys; the app runs on the platform's Spin, whose
        # minimum (scripts/spin-version.sh min) no release may meet yet.
        (setup,) = [step for step in self.job["steps"] if "spin/setup@" in step.get("uses", "")]
        version = setup["with"]["version"]
        self.assertRegex(version, r"^v\d+\.\d+\.\d+$", "a release, not canary or latest")
        pinned = tuple(int(part) for part in version.lstrip("v").split("."))
        self.assertGreaterEqual(pinned, min_spin_cli_version())

    def test_the_comment_at_the_pin_names_the_apps_runtime_minimum(self):
        # So that raising the app's minimum cannot leave the workflow saying an older one.
        with open(WORKFLOW) as handle:
            lines = handle.read().splitlines()
        (pin,) = [i for i, line in enumerate(lines) if line.strip().startswith("version: v")]
        comment = []
        for line in reversed(lines[:pin]):
            if not line.strip().startswith("#"):
                break
            comment.insert(0, line.strip().lstrip("#").strip())
        comment = " ".join(comment)
        runtime_min = ".".join(map(str, min_spin_version()))
        self.assertIn(f"Spin {runtime_min} or newer", comment)
        self.assertIn("scripts/spin-version.sh min", comment)
        self.assertIn("scripts/spin-version.sh cli-min", comment)
        cli_min = ".".join(map(str, min_spin_cli_version()))
        self.assertIn(f"Spin {cli_min}", comment)

    def test_each_plugin_is_pinned(self):
        step = step_running(self.job, "spin plugins install")
        self.assertIn('--version "$version"', step["run"])
        for plugin in ("aka", "cloud"):
            self.assertRegex(step["env"][f"{plugin.upper()}_PLUGIN_VERSION"], r"^\d+\.\d+\.\d+$")
            self.assertIn(f'{plugin}) version="${plugin.upper()}_PLUGIN_VERSION"', step["run"])

    def test_each_variable_comes_from_a_secret_or_a_repository_variable(self):
        for name, declaration in spin_variables().items():
            source = self.env[name.upper()]
            # db_ca_cert is no secret, but a multi-line PEM fits a secret, not a variable.
            if declaration.get("secret") or name == "db_ca_cert":
                self.assertRegex(source, r"^\$\{\{ secrets\.[A-Z_]+ \}\}$", name)
            else:
                self.assertIn("vars.", source, name)

    def test_defaults_equal_spin_toml_defaults(self):
        for name, declaration in spin_variables().items():
            default = declaration.get("default")
            match = re.search(r"\|\| '([^']*)'", self.env[name.upper()])
            if match:
                self.assertEqual(match.group(1), default, name)
            elif default and name != "db_host":
                self.fail(f"{name}: an unset repository variable would deploy an empty value")

    def test_aka_app_is_a_repository_variable(self):
        self.assertEqual(self.env["AKA_APP_ID"], "${{ vars.AKA_APP_ID }}")


class Evaluator(unittest.TestCase):
    """The expression evaluator above, on cases whose value GitHub documents."""

    def test_short_circuit_values_and_comparisons(self):
        contexts = {"vars": {"A": "x"}, "inputs": {}}
        self.assertEqual(evaluate("${{ vars.A || 'd' }}", contexts), "x")
        self.assertEqual(evaluate("${{ vars.B || 'd' }}", contexts), "d")
        self.assertEqual(evaluate("${{ vars.A && 'y' }}", contexts), "y")
        self.assertIsNone(evaluate("${{ vars.B && 'y' }}", contexts))
        self.assertIs(evaluate("${{ vars.A == 'X' }}", contexts), True)
        self.assertIs(evaluate("${{ vars.A != 'x' }}", contexts), False)
        self.assertEqual(evaluate("${{ vars.A == 'x' && 'a' || 'b' }}", contexts), "a")
        self.assertEqual(evaluate("${{ vars.A == 'z' && 'a' || 'b' }}", contexts), "b")


if __name__ == "__main__":
    unittest.main()
