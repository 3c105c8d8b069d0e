// Everything a model needs from the ops layer, in one include.
#pragma once
#include "txl/autograd/node.h"
#include "txl/ops/elementwise.h"
#include "txl/ops/index.h"
#include "txl/ops/matmul.h"
#include "txl/ops/nn_ops.h"
#include "txl/ops/reduce.h"
#include "txl/ops/view.h"
