"""FLOPs of a traced TensorFlow graph, counted from the shapes of its convolutions and matrix multiplies.

Method: trace the computation with fixed input shapes (a concrete function), walk every op of its graph that the
outputs or side effects depend on (and the function bodies it calls), and add 2 x multiply-accumulates for Conv2D,
Conv2DBackpropInput, Conv2DBackpropFilter, MatMul and BatchMatMul. Element-wise ops (bias, activations, the
optimizer's updates, losses) are not counted: they are memory-bound and add well under 1 % of these networks'
arithmetic.

Why not TF's own counters (TF 2.21): `tf.compat.v1.profiler` float_ops has statistics only for forward ops
(Conv2D, MatMul, BiasAdd): it counts no Conv2DBackprop* op, so it misses about two thirds of a training step.
XLA's `experimental_get_compiler_ir` offers only HLO text stages ('flops' is not a valid stage; there is no
public cost analysis). `profiler_float_ops` is kept as a cross-check of forward graphs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import tensorflow as tf

_CONVOLUTIONS = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter")
_MATMULS = ("MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3")


def _dims(tensor: tf.Tensor) -> list[int]:
    """Static dimensions of `tensor`; a ValueError if any is unknown (trace with fixed shapes)."""
    shape = tensor.shape
    if shape.rank is None or None in shape.as_list():
        raise ValueError(f"{tensor.name} has a shape unknown at trace time ({shape}); trace with fixed shapes.")
    return shape.as_list()


def convolution_flops(output_shape: list[int], kernel_shape: list[int]) -> int:
    """2 x multiply-accumulates of a 2-D convolution producing `output_shape` [N, H, W, C_out] (NHWC) with a kernel
    [kh, kw, C_in, C_out]. Its two gradients cost the same: each output element of the forward convolution meets
    kh * kw * C_in weights once."""
    kernel_height, kernel_width, in_channels, _ = kernel_shape
    return 2 * int(np.prod(output_shape)) * kernel_height * kernel_width * in_channels


def op_flops(op: tf.Operation) -> int:
    """FLOPs of one graph op (0 for ops that are not convolutions or matrix multiplies)."""
    if op.type in _CONVOLUTIONS:
        if op.get_attr("data_format") != b"NHWC":
            raise ValueError(f"{op.name}: only NHWC convolutions are counted, got {op.get_attr('data_format')}.")
        if op.type == "Conv2D":
            forward_output, kernel = _dims(op.outputs[0]), _dims(op.inputs[1])
        elif op.type == "Conv2DBackpropInput":  # inputs: input_sizes, filter, out_backprop
            forward_output, kernel = _dims(op.inputs[2]), _dims(op.inputs[1])
        else:  # Conv2DBackpropFilter, inputs: input, filter_sizes, out_backprop; output = kernel gradient
            forward_output, kernel = _dims(op.inputs[2]), _dims(op.outputs[0])
        return convolution_flops(forward_output, kernel)
    if op.type in _MATMULS:
        left, output = _dims(op.inputs[0]), _dims(op.outputs[0])
        if op.type == "MatMul":
            inner = left[0] if op.get_attr("transpose_a") else left[1]
        else:
            inner = left[-2] if op.get_attr("adj_x") else left[-1]
        return 2 * int(np.prod(output)) * inner
    return 0


def _live_ops(graph: tf.Graph) -> list[tf.Operation]:
    """Ops of a function graph that its outputs or its side effects (control outputs) depend on: TF prunes the
    rest before running (e.g. the input gradient of a first convolution, which tape.gradient builds anyway)."""
    roots = [tensor.op for tensor in getattr(graph, "outputs", [])] + list(getattr(graph, "control_outputs", []))
    if not roots:
        return graph.get_operations()
    live, pending = set(), roots
    while pending:
        op = pending.pop()
        if op not in live:
            live.add(op)
            pending += [tensor.op for tensor in op.inputs] + list(op.control_inputs)
    return [op for op in graph.get_operations() if op in live]


def _ops(graph: tf.Graph) -> Iterator[tf.Operation]:
    """Every live op of `graph` and of the function bodies it calls (each call counted once per call site)."""
    for op in _live_ops(graph):
        yield op
        for attr in ("f", "then_branch", "else_branch", "body"):
            try:
                function_name = op.get_attr(attr).name
            except (ValueError, AttributeError):
                continue
            function = graph._get_function(function_name)  # pylint: disable=protected-access
            if function is not None:
                yield from _ops(function.graph)


def graph_flops(graph: tf.Graph) -> int:
    """Total convolution and matrix-multiply FLOPs of the live ops of `graph`."""
    return sum(op_flops(op) for op in _ops(graph))


def function_flops(function: Callable, *specs: tf.TensorSpec) -> int:
    """FLOPs of one call of `function` traced with inputs of the fixed shapes `specs`."""
    return graph_flops(tf.function(function).get_concrete_function(*specs).graph)


def profiler_float_ops(function: Callable, *specs: tf.TensorSpec) -> int:
    """TF's own count (tf.compat.v1.profiler float_ops) of the traced graph: forward ops only (see the module)."""
    graph = tf.function(function).get_concrete_function(*specs).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return tf.compat.v1.profiler.profile(graph, options=options).total_float_ops
