# Names and codes of the C library (csrc/act.c, loss.c, optim.c, plan.c, fastnn.h): every table that
# maps a public name to a C code is built here by asking C, so reordering a C enum cannot desynchronise
# Python from the kernels.

cdef extern from "net.h" nogil:
    enum:
        FNN_OK
        FNN_ERR_NOMEM
        FNN_ERR_ARG
        FNN_ERR_IO
        FNN_ERR_FORMAT
        FNN_ERR_UNSUPPORTED
        FNN_ERR_NONFINITE
        FNN_ERR__COUNT
    enum:
        FNN_ACT__COUNT
        FNN_LOSS__COUNT
        FNN_OPT__COUNT
        FNN_LAYER__COUNT
        FNN_SCHED__COUNT
    const char *fnn_act_name(int act)
    int fnn_act_from_name(const char *name)
    int fnn_act_is_layer(int act)
    double fnn_act_default_alpha(int act)
    bint FNN_ACT_IS_ROWWISE(int act)
    const char *fnn_loss_name(int loss)
    int fnn_loss_link(int loss)
    const char *fnn_optim_name(int kind)
    const char *fnn_layer_kind_name(int kind)
    const char *fnn_schedule_name(int kind)


ctypedef const char *(*name_fn)(int) noexcept nogil


cdef dict _table(name_fn name, int count):
    return {name(code).decode(): code for code in range(count)}


# Activation name -> code: every kernel of fnn.ops (log_softmax included).
ACTIVATIONS = _table(fnn_act_name, FNN_ACT__COUNT)
# The activations a layer may use, and their parameter's default (leaky_relu's slope, elu's alpha).
LAYER_ACTIVATIONS = {n: fnn_act_default_alpha(c) for n, c in ACTIVATIONS.items() if fnn_act_is_layer(c)}
ROWWISE_ACTIVATIONS = frozenset(n for n, c in ACTIVATIONS.items() if FNN_ACT_IS_ROWWISE(c))
LOSSES = _table(fnn_loss_name, FNN_LOSS__COUNT)
# The activation predict applies to a loss's output (the link fused into the loss).
LOSS_LINKS = {n: fnn_act_name(fnn_loss_link(c)).decode() for n, c in LOSSES.items()}
OPTIMIZERS = _table(fnn_optim_name, FNN_OPT__COUNT)
LAYER_KINDS = _table(fnn_layer_kind_name, FNN_LAYER__COUNT)
# Learning-rate schedule kinds ("none": the optimizer's lr), evaluated by the engine at each step.
SCHEDULES = _table(fnn_schedule_name, FNN_SCHED__COUNT)

ERR_NOMEM = FNN_ERR_NOMEM
ERR_ARG = FNN_ERR_ARG
ERR_IO = FNN_ERR_IO
ERR_FORMAT = FNN_ERR_FORMAT
ERR_UNSUPPORTED = FNN_ERR_UNSUPPORTED
ERR_NONFINITE = FNN_ERR_NONFINITE


def check(int rc, str what):
    """Raise the Python error of a C error code."""
    if rc == FNN_OK:
        return
    msg = f"{what}: {fnn_strerror(rc).decode()}"
    if rc == FNN_ERR_NOMEM:
        raise MemoryError(msg)
    raise ValueError(msg)
