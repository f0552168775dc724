"""The ``thesis-shared`` protocol: one composed context per group of a file's lines.

It exists to make evaluating a whole CPU grid affordable (about one window per file instead of one
per line); these tests pin what it promises: the grouping rule, never less than half a line's
``thesis`` context, the same prompts when the lines fit, a composer that never sees a grouped line,
and the same records from both engines.
"""

from __future__ import annotations

import pytest

from rlctx_utils.composers import compose, render_completion
from rlctx_utils.evaluation import protocols
from rlctx_utils.evaluation.runner import build_tasks, run_tasks, shared_groups, split_joint, tasks_frame

from test_evaluation import _datapoints, memorizer  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def dps():
    return _datapoints()


def test_groups_rule():
    assert shared_groups([]) == []
    assert shared_groups([100, 90, 80]) == [[0, 1, 2]]          # all within half of the last one's room
    assert shared_groups([400, 150, 100]) == [[0], [1, 2]]      # 400 > 2 x 100: its own group
    assert shared_groups([50, 0, -10]) == [[0], [1, 2]]         # no room: only with lines without room
    rooms = [1000, 700, 600, 340, 300, 10, 0, -5]
    groups = shared_groups(rooms)
    assert sorted(i for g in groups for i in g) == list(range(len(rooms)))
    for g in groups:
        own = rooms[g[-1]]
        assert all((2 * own >= rooms[i]) if own > 0 else rooms[i] <= 0 for i in g)


@pytest.mark.parametrize("max_context", [120, 200, 4096])
def test_half_the_context_and_no_leak(py_tokenizer, dps, max_context):
    seen = []

    def spy(name, snapshot, path, text, **kw):
        comp = compose(name, snapshot, path, text, **kw)
        seen.append((path, text))
        return comp

    shared = build_tasks(dps, py_tokenizer, composer="path_distance_py", max_context=max_context,
                         protocol="thesis-shared", compose_fn=spy)
    alone = build_tasks(dps, py_tokenizer, composer="path_distance_py", max_context=max_context, protocol="thesis")
    key = lambda t: (t.datapoint, t.line)  # noqa: E731
    alone_by = {key(t): t for t in alone}
    assert sorted(map(key, shared)) == sorted(alone_by)
    assert len(seen) <= len(shared)
    by_path = {dp.completion_path: dp.completion_content for dp in dps}
    for t in shared:
        a = alone_by[key(t)]
        assert t.cont == a.cont and t.lead == a.lead and t.target == a.target
        assert len(t.prompt) <= max_context
        prefix = protocols.completion_prefix(by_path[t.completion_path], t.line, "thesis")
        rendered = render_completion(t.completion_path, prefix)
        comp_ids, _, _ = split_joint(py_tokenizer, rendered + protocols.continuation_text(t.target, t.line, "thesis"),
                                     len(rendered))
        n = min(len(comp_ids), max_context)
        # the same completion prefix ends both prompts; the shared context is at least half thesis's
        assert t.prompt[len(t.prompt) - n:] == a.prompt[len(a.prompt) - n:]
        ctx_shared, ctx_alone = len(t.prompt) - n, len(a.prompt) - n
        assert 0 <= ctx_shared <= ctx_alone and 2 * ctx_shared >= ctx_alone
    # the composer saw only text above every line it served
    for path, text in seen:
        lines = [t.line for t in shared if t.completion_path == path]
        assert any(text == protocols.completion_prefix(by_path[path], ln, "thesis") for ln in lines)
    if max_context == 4096:  # everything fits: one composition per file and thesis's prompts exactly
        assert len(seen) == len(dps)
        for t in shared:
            assert t.prompt == alone_by[key(t)].prompt


def test_engines_agree_and_prefix_is_shared(py_tokenizer, memorizer, dps):  # noqa: F811
    def frame(engine, **kw):
        tasks = build_tasks(dps, py_tokenizer, composer="path_distance_py", max_context=160,
                            protocol="thesis-shared")
        return tasks_frame(run_tasks(memorizer, py_tokenizer, tasks, "thesis-shared", engine=engine, **kw))

    ref, fast = frame("reference"), frame("fast", batch_tokens=600)
    assert list(ref["match"]) == list(fast["match"])
    assert list(ref["token_acc"]) == list(fast["token_acc"])
    assert (ref["line_loss"] - fast["line_loss"]).abs().max() < 1e-3
    assert ref["truncated"].all()


def test_protocol_identity_of_older_protocols_unchanged():
    assert "shared_context" not in protocols.get_protocol("thesis").to_dict()
    assert protocols.get_protocol("thesis-shared").to_dict()["shared_context"] is True


def test_one_pass_per_group_equals_each_line_alone(py_tokenizer, memorizer, dps):  # noqa: F811
    """The fast engine scores a thesis-shared group in one pass over its longest prompt (cache cut
    per line); the reference engine runs every line on its own: the same records."""
    from rlctx_utils.evaluation.runner import nested_groups

    for composer, max_context in (("file_level", 512), ("path_distance_py", 400)):
        tasks = build_tasks(dps, py_tokenizer, composer=composer, max_context=max_context, protocol="thesis-shared")
        groups = nested_groups(tasks)
        assert sorted(i for g in groups for i in g) == list(range(len(tasks)))
        assert len(groups) < len(tasks)  # lines really share passes
        ref = tasks_frame(run_tasks(memorizer, py_tokenizer, tasks, "thesis-shared", engine="reference"))
        tasks = build_tasks(dps, py_tokenizer, composer=composer, max_context=max_context, protocol="thesis-shared")
        fast = tasks_frame(run_tasks(memorizer, py_tokenizer, tasks, "thesis-shared", engine="fast",
                                     batch_tokens=700, max_rows=2))
        assert list(ref["match"]) == list(fast["match"])
        assert list(ref["token_acc"]) == list(fast["token_acc"])
        assert list(ref["prediction"]) == list(fast["prediction"])
        assert (ref["line_loss"] - fast["line_loss"]).abs().max() < 1e-3
        assert composer != "file_level" or ref["match"].any()  # the memoriser completes its files


def test_profile_protocol_and_incontext_runs():
    from rlctx_utils.evaluation import presets

    assert presets.default_protocol({"eval": {"protocol": "thesis-shared,lca"}}) == "thesis-shared"
    assert presets.default_protocol({}) == "thesis"
    cfg = {"eval": {"incontext_runs": ["base", "pd"]}}
    assert presets.incontext_checkpoints(cfg, "runs") == ["run:base", "run:pd"]
    assert presets.incontext_checkpoints(cfg, "run:x path/y") == ["run:x", "path/y"]  # asked for: as asked
    assert presets.incontext_checkpoints({}, "runs") == ["runs"]
    assert presets.profile_protocol("no-such-profile") == "thesis"
    assert presets.profile_protocol("cpu") == "thesis-shared"
