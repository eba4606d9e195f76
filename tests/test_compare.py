"""`diffsim compare`: one quick comparison (CartPole, DP against rejax DQN, 2 seeds, 50
evaluation episodes) shared by the tests, its checkpoints re-evaluated through the very path
`diffsim eval` takes, its table against its JSON; bad input rejected before any work."""

import json
import os
import re
import signal
import statistics
import sys
import time

import numpy as np
import pytest

import diffsim
from diffsim import cli

pytest.importorskip("rejax")

EPISODES = 50


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    from diffsim._compare import compare

    out = tmp_path_factory.mktemp("compare")
    # an earlier comparison in the same folder, and a file that is not one of its
    for name in ("results.json", "table.md", "sac-seed4.eqx", "dp-seed1.eqx", "notes.txt"):
        (out / name).write_text("earlier")
    lines = []
    results = compare(
        "cartpole",
        methods=["dp", "dqn"],
        seeds=2,
        episodes=EPISODES,
        eval_seed=3,
        quick=True,
        out=out,
        log=lines.append,
    )
    return results, out, lines


def _eval_cli(capsys, env, path, episodes, seed):
    assert (
        cli.main(
            ["eval", env, str(path), "--episodes", str(episodes), "--seed", str(seed), "--json"]
        )
        == 0
    )
    return json.loads(capsys.readouterr().out)


def test_every_checkpoint_reevaluates_to_its_reported_return_through_diffsim_eval(quick, capsys):
    results, out, _ = quick
    assert sorted(results["methods"]) == ["dp", "dqn"]
    for method, rows in results["methods"].items():
        assert [row["seed"] for row in rows] == [0, 1]
        for row in rows:
            evaluated = _eval_cli(capsys, "cartpole", row["checkpoint"], EPISODES, 3)
            assert evaluated["episodes"] == EPISODES
            assert evaluated["mean"] == pytest.approx(row["mean_return"], rel=1e-6), method
            assert evaluated["std"] == pytest.approx(row["std_return"], rel=1e-5), method
    # two seeds of one method are two different controllers
    dqn = results["methods"]["dqn"]
    assert dqn[0]["mean_return"] != dqn[1]["mean_return"]


def test_rl_policy_evaluation_is_deterministic_and_greedy(quick):
    from diffsim._methods import controller_template

    results, _, _ = quick
    recipe = diffsim.recipes()["cartpole"]
    row = results["methods"]["dqn"][0]
    metadata = diffsim.read_metadata(row["checkpoint"])
    assert metadata["method"] == "dqn" and metadata["controller"]["algorithm"] == "DQN"
    like = recipe.make_env()
    env, policy = diffsim.load_checkpoint(
        row["checkpoint"], (like, controller_template(recipe, like, metadata))
    )
    first = diffsim.evaluate(env, policy, episodes=EPISODES, seed=3)
    again = diffsim.evaluate(env, policy, episodes=EPISODES, seed=3)
    np.testing.assert_array_equal(np.asarray(first.returns), np.asarray(again.returns))
    assert first.mean == row["mean_return"]
    # greedy: the arg-max of the two Q-values is the push (rejax's act without exploration)
    observation = env.observe(diffsim.initial_states(env, 1, seed=3)[0])
    scores = np.asarray(policy(0.0, observation))
    assert scores.shape == (2,)
    push = env.action_space.to_control(policy(0.0, observation), None)
    assert float(push[0]) == (10.0 if scores[1] > scores[0] else -10.0)


def test_table_agrees_with_results_json(quick):
    results, out, _ = quick
    saved = json.loads((out / "results.json").read_text())
    assert saved["env"] == "cartpole" and saved["eval_seed"] == 3
    assert saved["episodes"] == EPISODES and saved["thresholds"] == [475.0]
    text = (out / "table.md").read_text()
    for method, rows in saved["methods"].items():
        (line,) = [ln for ln in text.splitlines() if ln.startswith(f"| {method} |")]
        cells = [c.strip() for c in line.strip("|").split("|")]
        returns = [r["mean_return"] for r in rows]
        low, median, high = np.percentile(returns, [25, 50, 75])
        assert cells[2] == f"{median:.1f} [{low:.1f}, {high:.1f}]"
        low, median, high = np.percentile([r["median_return"] for r in rows], [25, 50, 75])
        assert cells[3] == f"{median:.1f} [{low:.1f}, {high:.1f}]"
        assert cells[4] == f"{min(returns):.1f}"
        assert cells[5] == f"{statistics.median(r['env_steps'] for r in rows):,.0f}"
        reached = [r for r in rows if r["env_steps_to"]["475"] is not None]
        assert cells[8].startswith(f"{len(reached)}/{len(rows)}")
        for row in rows:
            # the first point of the learning curve at or above 475, or null
            curve = row["curve"]
            hits = [
                s for s, r in zip(curve["env_steps"], curve["returns"], strict=True) if r >= 475.0
            ]
            assert row["env_steps_to"]["475"] == (hits[0] if hits else None)
            assert curve["env_steps"][-1] == row["env_steps"]
    for name in ("curves_steps.png", "curves_time.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_budgets_and_progress_lines(quick):
    results, _, lines = quick
    recipe = diffsim.recipes()["cartpole"]
    options = recipe.train_options
    dp_steps = recipe.quick_iterations * options["batch_size"] * options["window"]
    assert [r["env_steps"] for r in results["methods"]["dp"]] == [dp_steps, dp_steps]
    # DQN quick: 2,000 steps of 2 envs, in 2 chunks of 500 iterations
    assert [r["env_steps"] for r in results["methods"]["dqn"]] == [2000, 2000]
    assert results["methods"]["dqn"][0]["curve"]["env_steps"] == [0, 1000, 2000]
    assert all(r["seeds_in_program"] == 2 for r in results["methods"]["dqn"])
    for method in ("dp", "dqn"):
        for seed in (0, 1):
            assert any(re.match(rf"{method} seed {seed}: mean return", ln) for ln in lines)


def test_an_earlier_comparison_in_the_folder_is_replaced_and_said_so(quick):
    _, out, lines = quick
    assert lines[0] == f"replacing the earlier comparison in {out} (4 files)"
    written = sorted(path.name for path in out.iterdir())
    assert "sac-seed4.eqx" not in written and "notes.txt" in written  # others' files stay
    assert json.loads((out / "results.json").read_text())["env"] == "cartpole"
    assert [n for n in written if n.endswith(".eqx")] == [
        "dp-seed0.eqx", "dp-seed1.eqx", "dqn-seed0.eqx", "dqn-seed1.eqx"
    ]  # fmt: skip


@pytest.mark.slow  # 8-27 s (compilations): in `make test-all`
@pytest.mark.parametrize("method", ["ppo"])  # sac: notebooks/dp_vs_rl.ipynb
def test_continuous_rl_checkpoints_rebuild_from_their_metadata(method, tmp_path, capsys):
    """PPO/SAC policies (weights and normalisation statistics moved away from any fresh
    initialisation) saved the way `compare` saves them: `diffsim eval` rebuilds the
    structure from the metadata and gets the in-memory return, not the template's."""
    import jax

    from diffsim._compare import _measure, _save
    from diffsim._methods import MethodRun, methods
    from diffsim.rl._methods import settings

    recipe = diffsim.recipes()["pendulum"]
    env = recipe.make_env()
    chosen = methods()[method]
    config = settings(method, recipe, env)
    spec = {
        "algorithm": method.upper(),
        "hidden": list(config["hidden"]),
        "activation": config["activation"],
        "settings": config["settings"],
    }
    template = chosen.template(recipe, env, spec)
    policy = jax.tree_util.tree_map(lambda x: 3.0 * x + 0.1, template)
    run = MethodRun(0, policy, env, 0, 0.0, 0.0, [], [], [], spec)
    row = _save("pendulum", recipe, chosen, run, tmp_path, 1, 20, *_measure(recipe, run, 1, 20))
    evaluated = _eval_cli(capsys, "pendulum", row["checkpoint"], 20, 1)
    assert evaluated["mean"] == pytest.approx(row["mean_return"], rel=1e-6)
    assert diffsim.evaluate(env, template, episodes=20, seed=1).mean != pytest.approx(
        row["mean_return"], rel=1e-3
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        (["pendulum", "--methods", "dp,a2c"], "unknown method 'a2c': choose from"),
        (["pendulum", "--methods", "dqn"], "'dqn' needs discrete actions, which pendulum"),
        (["cartpole", "--methods", "sac"], "'sac' needs continuous actions, which cartpole"),
        (["cartpole", "--methods", ","], "--methods names no method"),
        (["cartpole", "--seeds", "0"], "--seeds must be a positive integer"),
        (["cartpole", "--eval-seed", "-1"], "--eval-seed must be a whole number from 0"),
        (["nowhere"], "unknown env 'nowhere'"),
    ],
)
def test_bad_input_is_one_line_and_exit_status_2(argv, message, capsys, tmp_path):
    assert cli.main(["compare", *argv, "--out", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.err.count("\n") == 1, captured.err
    assert captured.out == "" and not any(tmp_path.iterdir())


def test_a_stopped_comparison_keeps_the_methods_it_finished(monkeypatch, capsys, tmp_path):
    from diffsim.controllers._methods import MPCMethod

    def stopped(self, recipe, seeds, *, quick, log):  # SIGTERM while mpc runs
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # the handler raises first
        raise AssertionError("SIGTERM did not stop the comparison")

    monkeypatch.setattr(MPCMethod, "run", stopped)
    before = signal.getsignal(signal.SIGTERM)
    argv = ["compare", "pendulum", "--methods", "lqr,mpc", "--seeds", "1", "--episodes", "10"]
    assert cli.main([*argv, "--out", str(tmp_path)]) == 143
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"diffsim compare: stopped by SIGTERM: {tmp_path / 'results.json'} holds the methods "
        "that had finished, if any (a comparison does not resume)"
    )
    saved = json.loads((tmp_path / "results.json").read_text())
    assert list(saved["methods"]) == ["lqr"] and "wall_seconds" not in saved
    assert (tmp_path / "lqr-seed0.eqx").is_file() and "lqr" in (tmp_path / "table.md").read_text()
    assert signal.getsignal(signal.SIGTERM) is before  # the command's handler is gone


def test_missing_rl_extra_says_what_to_install(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "rejax", None)  # `import rejax` raises ImportError
    assert cli.main(["compare", "cartpole", "--methods", "dp,ppo", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "method 'ppo' needs the rl extra (rejax): pip install" in err
    assert err.count("\n") == 1
    # DP alone needs no extra: it gets past validation (checked without training)
    from diffsim._compare import prepare

    _, _, methods = prepare("cartpole", ["dp"], seeds=1, episodes=1)
    assert [m.name for m in methods] == ["dp"]


def test_default_methods_fit_the_action_space():
    from diffsim._compare import prepare

    for env, expected in (
        ("pendulum", ["dp", "ppo", "sac"]),
        ("cartpole", ["dp", "dqn", "ppo"]),
        ("cartpole-swingup", ["dp", "ppo", "sac"]),
    ):
        _, _, methods = prepare(env, None, seeds=1, episodes=1)
        assert [m.name for m in methods] == expected


def test_a_recipe_metric_is_the_fraction_of_episodes_meeting_it(quick):
    """A per-episode criterion (here: balanced all 500 steps) over the evaluation episodes,
    against the episode lengths `diffsim.evaluate` reports; and its table column."""
    from diffsim._compare import episode_metric, table
    from diffsim._methods import controller_template

    results, _, _ = quick
    recipe = diffsim.recipes()["cartpole"]
    row = results["methods"]["dp"][0]
    like = recipe.make_env()
    metadata = diffsim.read_metadata(row["checkpoint"])
    env, policy = diffsim.load_checkpoint(
        row["checkpoint"], (like, controller_template(recipe, like, metadata))
    )
    lengths = np.asarray(diffsim.evaluate(env, policy, episodes=EPISODES, seed=3).lengths)
    fraction = episode_metric(env, policy, lambda e, t: t.length >= 500, EPISODES, 3)
    assert fraction == pytest.approx(np.mean(lengths >= 500))
    assert 0.0 < fraction < 1.0  # quick training: some episodes fall, some do not
    with_metric = json.loads(json.dumps(results)) | {"metrics": ["balanced"]}
    for rows in with_metric["methods"].values():
        for i, r in enumerate(rows):
            r["metrics"] = {"balanced": 0.25 * (i + 1)}
    text = table(with_metric)
    assert "balanced (fraction of episodes), median [IQR]" in text
    assert "| 0.375 [0.312, 0.438] |" in text


@pytest.mark.slow  # 9 s: in `make test-all`
def test_dp_builds_each_seeds_controller_outside_any_trace():
    """A recipe may build its controller with NumPy (the swing-up's LQR initialisation):
    `dp` builds one per seed eagerly, from the keys `Recipe.run` uses, then trains them in
    one program."""
    import dataclasses

    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import jax.random as jr

    from diffsim._methods import methods

    base = diffsim.load_recipe("pendulum")

    def make(env, key):
        policy = base.make_controller(env, key)
        assert float(jr.uniform(key)) >= 0  # concrete only outside a trace
        return policy

    recipe = dataclasses.replace(
        base, make_controller=make, quick_iterations=1, train_options=dict(batch_size=2, window=5)
    )
    first, second = methods()["dp"].run(recipe, [0, 3], quick=True, log=lambda line: None)
    env = recipe.make_env()
    for run, seed in ((first, 0), (second, 3)):
        untrained = make(env, jr.split(jr.key(seed))[0])
        moved = jax.tree_util.tree_leaves(eqx.filter(run.controller, eqx.is_array))
        start = jax.tree_util.tree_leaves(eqx.filter(untrained, eqx.is_array))
        # one small Adam step from that seed's own initialisation
        assert max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(moved, start, strict=True)) < 0.05
