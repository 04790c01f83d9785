/* model_t.h - body of inference, included by model.c once per dtype (FNN_T, FNN_P).
 *
 * model_forward: rows x n_in inputs through every layer, in inference mode (dropout is the
 * identity), without the link.  Two ping-pong buffers of rows x max_width values (ws) hold the
 * activations; returns a pointer to the output (rows x n_out, row-major), which is x itself when
 * every layer is an identity.  Each step is the training engine's (net_t.h), so the results are
 * bitwise those of Sequential.predict: Dense through gemm_ex with bias and elementwise activation
 * fused into its epilogue, row-wise softmax after it through act_forward.
 */
#define T FNN_T

static const T *FNN_FN(model_forward_)(const fnn_model *m, const T *x, size_t rows, T *ws, int nt) {
    const T *params = (const T *)m->params;
    T *buf[2] = {ws, ws + rows * m->max_width};
    const T *cur = x;
    for (int l = 0; l < m->n_layers; l++) {
        const fnn_model_layer *L = &m->layers[l];
        const int act = m->act[l];
        if (m->folded[l]) continue;
        T *dst = cur == buf[0] ? buf[1] : buf[0];
        switch (L->kind) {
        case FNN_MODEL_DENSE: {
            /* a folded Activation layer brings its own alpha */
            const T alpha = (T)(l + 1 < m->n_layers && m->folded[l + 1] ? L[1].act_alpha : L->act_alpha);
            const T *b = L->use_bias ? params + L->b_off : NULL;
            if (FNN_ACT_IS_ROWWISE(act)) { /* a tile of the epilogue holds part of a row only */
                FNN_FN(gemm_ex)(0, 0, rows, L->out, L->in, 1, cur, L->in, params + L->w_off, L->out, 0, dst, L->out, b,
                                FNN_ACT_LINEAR, 0, nt);
                FNN_FN(act_forward)(act, alpha, dst, dst, rows, L->out, nt);
            } else {
                FNN_FN(gemm_ex)(0, 0, rows, L->out, L->in, 1, cur, L->in, params + L->w_off, L->out, 0, dst, L->out, b,
                                act, alpha, nt);
            }
            cur = dst;
            break;
        }
        case FNN_MODEL_ACTIVATION:
            if (act != FNN_ACT_LINEAR) {
                FNN_FN(act_forward)(act, (T)L->act_alpha, cur, dst, rows, L->out, nt);
                cur = dst;
            }
            break;
        default: /* dropout: the identity at inference */
            break;
        }
    }
    return cur;
}

#undef T
