import importlib.util
import sys
from pathlib import Path

import pytest

from sdxfer import Decoder
from sdxfer.cli import main as sdxfer_main
from sdxfer.codegen import plan

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_SCHEMA = ROOT / "schema" / "events.yaml"
TEST_SCHEMA = ROOT / "tests" / "schemas" / "all_types.yaml"

sys.path.insert(0, str(Path(__file__).resolve().parent))


class Generated:
    """A schema taken through the whole path: sdxfer gen into a folder, the
    host-C harness compiled against that header, the written events.py imported."""

    def __init__(self, schema: Path, out: Path):
        import hostc

        assert sdxfer_main(["gen", "--schema", str(schema), "--out", str(out)]) == 0
        self.schema = schema
        self.layout = plan(str(schema))  # with the lock gen just wrote
        self.out = out
        spec = importlib.util.spec_from_file_location(f"gen_{out.name}", out / "events.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        self.decoder = Decoder.from_module(module)
        self.harness = hostc.build(self.layout, out, out)

    def pack(self, calls: list[tuple[int, dict]]) -> list[bytes]:
        import hostc

        return hostc.run(self.harness, b"".join(hostc.encode_call(self.layout, i, v) for i, v in calls))


@pytest.fixture(scope="session", params=[SHIPPED_SCHEMA, TEST_SCHEMA], ids=["shipped", "test-schema"])
def generated(request, tmp_path_factory):
    return Generated(request.param, tmp_path_factory.mktemp(request.param.stem))
