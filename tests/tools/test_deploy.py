"""deploy/: no container engine or cluster runs here, so at least every `wildpose` command line in the
compose file and the Kubernetes manifests must be one our CLI accepts, and the pieces must connect."""

from pathlib import Path

import pytest
import yaml

from wildpose.tools import cli

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def wildpose_commands() -> list[tuple[str, list[str]]]:
    """(where, argv) of every container that runs our image."""
    commands = []
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for name, service in compose["services"].items():
        if service.get("image", "").startswith("wildpose"):
            commands.append((f"compose {name}", [str(a) for a in service["command"]]))
    for document in yaml.safe_load_all((DEPLOY / "k8s" / "pipelines.yaml").read_text()):
        if document["kind"] != "Deployment":
            continue
        spec = document["spec"]["template"]["spec"]
        for container in spec.get("initContainers", []) + spec["containers"]:
            if container["image"].startswith("wildpose"):
                commands.append((f"k8s {document['metadata']['name']}/{container['name']}",
                                 [str(a) for a in container["args"]]))
    return commands


@pytest.mark.parametrize("where, argv", wildpose_commands(), ids=lambda value: value if isinstance(value, str) else "")
def test_every_deployed_wildpose_command_line_parses(where, argv, capsys):
    try:
        args = cli.build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"{where}: `wildpose {' '.join(argv)}` is rejected: {capsys.readouterr().err.strip()}")
    assert args.verb == argv[0]


def test_the_compose_pipelines_infer_on_its_triton_service_and_the_proxy_forwards_both():
    services = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    assert "tritonserver --model-repository=/models" in " ".join(services["triton"]["command"])
    assert services["models"]["command"][:3] == ["export", "--triton-repo", "/models"]
    for site in ("site-a", "site-b"):
        command = services[site]["command"]
        assert command[command.index("--engine") + 1] == "triton://triton:8001"
    proxy = services["proxy"]["command"]
    assert [proxy[i + 1] for i, a in enumerate(proxy) if a == "--upstream"] == ["tcp://site-a:5555",
                                                                                 "tcp://site-b:5555"]
