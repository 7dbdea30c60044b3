import pytest
import torch

from histae.build import build_option
from histae.model import ConvAutoencoder, ConvStack, count_parameters


def test_reference_model_has_the_reference_parameter_count() -> None:
    assert count_parameters(build_option("model/conv_ae")) == 5_053_491


def test_shapes_through_encoder_and_decoder() -> None:
    model = build_option("model/conv_ae")
    x = torch.rand(5, 3, 32, 32)
    code = model.encoder(x)
    assert code.shape == (5, 128)
    assert model.decoder(code).shape == (5, 3, 32, 32)
    assert model(x).shape == (5, 3, 32, 32)
    assert model.encoder.encoded_shape == (48, 20, 20)


def test_output_is_unbounded_like_the_reference() -> None:
    # No final activation: nothing squashes the decoder's last layer.
    last = list(build_option("model/conv_ae").decoder.modules())[-1]
    assert isinstance(last, torch.nn.ConvTranspose2d)


def test_conv_stack_reports_its_shape_and_mirrors_itself() -> None:
    stack = ConvStack((3, 8, 16), kernel_size=3, activation="relu")
    x = torch.rand(2, 3, 12, 10)
    assert tuple(stack(x).shape[1:]) == stack.get_output_shape((3, 12, 10)) == (16, 8, 6)
    mirror = stack.create_transposed(act_last_layer=False)
    assert mirror.channels == (16, 8, 3)
    assert tuple(mirror(stack(x)).shape) == (2, 3, 12, 10)
    assert not isinstance(list(mirror.layers)[-1], torch.nn.ReLU)
    assert isinstance(list(stack.layers)[-1], torch.nn.ReLU)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shape": (3, 8, 8)}, "model.shape .* too small"),
        ({"shape": (3, 32)}, r"model.shape must be \[channels, height, width\]"),
        ({"code_size": 0}, "model.code_size must be >= 1, got 0"),
        ({"activation": "swish"}, "model.activation must be one of"),
    ],
)
def test_bad_model_config_names_the_key(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_option("model/conv_ae", **kwargs)


def test_other_configurations_build_and_run() -> None:
    model = ConvAutoencoder(
        shape=(1, 16, 16), code_size=8, channels=(4,), kernel_size=3, activation="gelu"
    )
    assert model(torch.rand(2, 1, 16, 16)).shape == (2, 1, 16, 16)
