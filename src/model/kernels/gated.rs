//! The gated feed-forward activation on rows `[gate | up]` of width `2h`, in place:
//! `row[..h] ← act(gate + b_gate) · (up + b_up)`. SiLU (every published gated checkpoint) takes the
//! SwiGLU row kernel of [`super::rows`]; other activations (a config may name any) apply the
//! bias-and-activation row kernel to the gate half, then multiply.

use rayon::prelude::*;

use super::rows;
use super::vector::{self, Act};

/// Rows per task below which one thread does the work.
const MIN_ROWS: usize = 16;

/// `row[..h] ← act(row[..h] + bias[..h]) · (row[h..] + bias[h..])` for each row of width
/// `bias.len()` (`2h`).
pub(crate) fn gated_act(x: &mut [f32], bias: &[f32], act: Act) {
    if act == Act::Silu {
        return rows::swiglu(x, bias);
    }
    let width = bias.len();
    let h = width / 2;
    let (bias_gate, bias_up) = bias.split_at(h);
    let one = |row: &mut [f32]| {
        let (gate, up) = row.split_at_mut(h);
        vector::bias_act(gate, bias_gate, act);
        for ((g, u), b) in gate.iter_mut().zip(up.iter()).zip(bias_up) {
            *g *= *u + b;
        }
    };
    x.par_chunks_exact_mut(width)
        .with_min_len(MIN_ROWS)
        .for_each(one);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relu_gate_times_up() {
        let mut x = vec![-1.0, 2.0, 3.0, 4.0];
        gated_act(&mut x, &[0.5, 0.5, 1.0, 0.0], Act::Relu);
        assert_eq!(&x[..2], &[0.0, 2.5 * 4.0]);
    }
}
