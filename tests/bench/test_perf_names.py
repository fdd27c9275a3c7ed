"""bench/perf_names.py: each sample of `perf script` counted for its innermost Python function."""

from bench.perf_names import main, on_the_stack, samples, shares

PERF_SCRIPT = """\
python 18195  1821.057355:    2500000 cpu-clock:
\t          14aec2 cfunction_vectorcall_NOARGS+0x2 (/usr/lib/libpython3.13.so.1.0)
\t           f01be _PyObject_VectorcallTstate+0x4e (inlined)
\t    7efe21208715 py::loop_client:/srv/gateway/metering/redis_meter.py+0x5 (/tmp/perf-18195.map)
\t    7efe21208799 py::RedisMeter.settle:/srv/gateway/metering/redis_meter.py+0x5 (/tmp/perf-18195.map)

python 18195  1821.064138:    2500000 cpu-clock:
\t          25ba84 _PyFrame_ClearLocals+0x94 (inlined)
\t          25ba84 _PyFrame_ClearExceptCode+0x94 (/usr/lib/libpython3.13.so.1.0)
\t    7efe21205845 py::loop_client:/srv/gateway/metering/redis_meter.py+0x5 (/tmp/perf-18195.map)

python 18195  1821.068520:    2500000 cpu-clock:
\tffffffff8a0b1c2d entry_SYSCALL_64+0x2d ([kernel.kallsyms])
\t           2f1a0 __libc_write+0x10 (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t    7efe21207bd5 py::Segment.append:/srv/gateway/metering/journal.py+0x5 (/tmp/perf-18195.map)

python 18195  1821.074175:    2500000 cpu-clock:
\t           26e84 [unknown] (/srv/.venv/orjson/orjson.cpython-313-x86_64-linux-gnu.so)
"""


def test_each_sample_is_its_innermost_python_function_and_its_innermost_object():
    found = list(samples(PERF_SCRIPT.splitlines(keepends=True)))

    # the second past its "inlined" frame, the third's write its caller's, the last with no blank line after
    assert [(sample.python, sample.native) for sample in found] == [
        ("loop_client:/srv/gateway/metering/redis_meter.py", "libpython3.13.so.1.0"),
        ("loop_client:/srv/gateway/metering/redis_meter.py", "libpython3.13.so.1.0"),
        ("Segment.append:/srv/gateway/metering/journal.py", "[kernel.kallsyms]"),
        (None, "orjson.cpython-313-x86_64-linux-gnu.so"),
    ]
    total, by_function, by_object = shares(found)
    assert total == 4
    assert by_function.most_common(1) == [("loop_client:/srv/gateway/metering/redis_meter.py", 2)]
    assert by_function["(no Python frame)"] == 1 and by_object["[kernel.kallsyms]"] == 1


def test_a_function_counts_every_sample_it_is_on_the_stack_of():
    found = list(samples(PERF_SCRIPT.splitlines(keepends=True)))

    inclusive = on_the_stack(found)

    assert found[0].stack == {
        "loop_client:/srv/gateway/metering/redis_meter.py",
        "RedisMeter.settle:/srv/gateway/metering/redis_meter.py",
    }
    assert inclusive["RedisMeter.settle:/srv/gateway/metering/redis_meter.py"] == 1  # the caller, once
    assert inclusive["loop_client:/srv/gateway/metering/redis_meter.py"] == 2
    assert sum(inclusive.values()) == 4  # the orjson sample has no Python frame


def test_the_report_lists_the_shares(tmp_path, capsys):
    recorded = tmp_path / "perf.txt"
    recorded.write_text(PERF_SCRIPT)

    main([str(recorded), "--top", "2"])

    report = capsys.readouterr().out
    assert report.startswith("4 samples")
    assert " 50.0 %  loop_client:/srv/gateway/metering/redis_meter.py" in report
    assert " 25.0 %  Segment.append:/srv/gateway/metering/journal.py" in report
    assert "RedisMeter.settle" not in report  # an outer Python frame is not the sample's

    main([str(recorded), "--top", "3", "--inclusive"])

    assert " 25.0 %  RedisMeter.settle:/srv/gateway/metering/redis_meter.py" in capsys.readouterr().out
