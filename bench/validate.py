"""`resnet-bench validate`: placeholder until the harness self-checks land."""


def add_parser(sub) -> None:
    pass
