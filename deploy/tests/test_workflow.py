""".github/workflows/deploy.yml against spin.toml: what actionlint cannot know.
Run: python3 -m unittest discover -s deploy/tests"""
import re
import shlex
import unittest

import yaml

from common import WORKFLOW, spin_variables


def load_workflow():
    with open(WORKFLOW) as handle:
        # PyYAML reads the key `on` as the boolean True (YAML 1.1).
        workflow = yaml.safe_load(handle)
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow


def step_running(job, command):
    for step in job["steps"]:
        if command in step.get("run", ""):
            return step
    raise AssertionError(f"no step runs {command!r}")


class DeployWorkflow(unittest.TestCase):
    def setUp(self):
        self.workflow = load_workflow()
        self.migrate = self.workflow["jobs"]["migrate"]
        self.deploy = self.workflow["jobs"]["deploy"]

    def test_runs_on_a_push_to_main(self):
        self.assertEqual(self.workflow["on"]["push"]["branches"], ["main"])

    def test_migrations_are_applied_with_psql_before_deploying(self):
        step = step_running(self.migrate, "scripts/migrate.sh")
        self.assertIn("secrets.", step["env"]["MIGRATION_DB_URL"])
        self.assertEqual(self.deploy["needs"], "migrate")

    def test_spin_is_set_up_with_the_official_action_and_the_cloud_plugin(self):
        uses = [step for step in self.deploy["steps"] if "spin/setup@" in step.get("uses", "")]
        self.assertEqual(len(uses), 1)
        self.assertTrue(uses[0]["uses"].startswith("spinframework/actions/spin/setup@"))
        self.assertIn("cloud", uses[0]["with"]["plugins"])

    def test_rust_gets_the_wasm32_wasip2_target_before_spin_build(self):
        runs = [step.get("run", "") for step in self.deploy["steps"]]
        rust = next(i for i, run in enumerate(runs) if "wasm32-wasip2" in run)
        build = next(i for i, run in enumerate(runs) if "spin build" in run)
        deploy = next(i for i, run in enumerate(runs) if "spin deploy" in run)
        self.assertLess(rust, build)
        self.assertLess(build, deploy)

    def test_spin_deploy_passes_every_variable_of_spin_toml_once(self):
        command = step_running(self.deploy, "spin deploy")["run"].replace("\\\n", " ")
        words = shlex.split(command)
        passed = [words[i + 1].split("=", 1)[0] for i, w in enumerate(words) if w == "--variable"]
        self.assertEqual(sorted(passed), sorted(spin_variables()))
        self.assertEqual(len(passed), len(set(passed)))

    def test_each_variable_comes_from_a_secret_or_a_repository_variable(self):
        env = self.deploy["env"]
        for name, declaration in spin_variables().items():
            source = env[name.upper()]
            # db_ca_cert is no secret, but a multi-line PEM fits a secret, not a variable.
            if declaration.get("secret") or name == "db_ca_cert":
                self.assertRegex(source, r"^\$\{\{ secrets\.[A-Z_]+ \}\}$", name)
            else:
                self.assertIn("vars.", source, name)

    def test_defaults_equal_spin_toml_defaults(self):
        env = self.deploy["env"]
        for name, declaration in spin_variables().items():
            default = declaration.get("default")
            match = re.search(r"\|\| '([^']*)'", env[name.upper()])
            if match:
                self.assertEqual(match.group(1), default, name)
            elif default and name != "db_host":
                self.fail(f"{name}: an unset repository variable would deploy an empty value")

    def test_spin_deploy_names_its_plugin(self):
        self.assertEqual(self.deploy["env"]["SPIN_DEPLOY_PLUGIN"], "cloud")


if __name__ == "__main__":
    unittest.main()
