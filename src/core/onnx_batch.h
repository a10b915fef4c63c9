// Opening an ONNX model's batch dimension, so that an engine runs several images in one call
// (the `batch` knob, docs/ENVIRONMENTS.md). Exporters often fix the batch at 1: in the graph's
// inputs and outputs, in the shapes they record for intermediate tensors, and in the shape
// constants of Reshape nodes (`[1, -1]` before a classifier's Gemm).
#pragma once

#include <onnx/onnx_pb.h>

#include <string>

namespace deltann {

// Rewrites `model` in place for any batch size: a batch dimension of 1 in the graph's inputs
// (not those an initializer feeds) and outputs becomes the symbolic `batch`; the recorded shapes
// of intermediate tensors are dropped, for the engine to infer again; and a Reshape whose shape
// is a constant starting with 1 gets a copy of it starting with 0 ("keep the input's first
// dimension", the batch). Other hard-coded batch sizes (in Expand, Tile or Slice constants) are
// left as they are: an engine then refuses or misreads a batch, which the comparison with the
// variant at batch 1 shows. Throws Error naming `where` when an input's first dimension is a
// fixed size other than 1, or a Reshape would need its constant read with `allowzero`.
void open_batch_dimension(onnx::ModelProto& model, const std::string& where);

}  // namespace deltann
