//! The data the loop reads: each source's token split, language-model batches drawn by
//! weight at each source's cursor, SFT examples in a seeded order per epoch with the prompt
//! masked, and the validation batches.

use super::*;

/// A source's splits.
pub(super) struct Source {
    pub(super) train: Split,
    pub(super) val: Split,
    pub(super) has_prompt: bool,
}

/// Whether an example of `len` tokens whose first `prompt` are masked leaves a scored target
/// within a window of `seq_len`: targets are tokens 1 … min(len, seq_len + 1) − 1, and only
/// those past the prompt count.
pub fn has_scored_token(len: u32, prompt: u32, seq_len: u64) -> bool {
    let n = (len as u64).min(seq_len + 1);
    n > (prompt as u64).max(1)
}

/// Indices of the training examples of an SFT source that have a scored token at `seq_len`,
/// or an error naming the cause when none has.
pub(super) fn sft_examples(name: &str, src: &Source, seq_len: u64) -> Result<Vec<u32>> {
    let split = &src.train;
    let usable: Vec<u32> = (0..split.n_docs())
        .filter(|&k| {
            let (_, len, prompt) = split.doc(k);
            has_scored_token(len, prompt, seq_len)
        })
        .map(|k| k as u32)
        .collect();
    if usable.is_empty() {
        let shortest_prompt = (0..split.n_docs())
            .map(|k| split.doc(k).2)
            .min()
            .unwrap_or(0);
        bail!(
            "none of the {} training examples of `{name}` has a response token within seq_len {seq_len} \
             (the shortest prompt is {shortest_prompt} tokens, and prompt tokens are not scored); \
             raise seq_len above the prompts' length",
            split.n_docs()
        );
    }
    Ok(usable)
}

/// The run's sources, and the SHA-256 of the tokenizer they were all tokenized with.
pub(super) fn load_sources(
    cfg: &RunConfig,
    data: &Path,
) -> Result<(BTreeMap<String, Source>, Option<String>)> {
    let mut names: Vec<String> = cfg
        .phases
        .iter()
        .flat_map(|p| p.mixture.keys().cloned().chain(p.source.clone()))
        .collect();
    names.extend(cfg.run.validation.iter().cloned());
    names.sort();
    names.dedup();
    let mut out = BTreeMap::new();
    let mut tok_hash: Option<(String, String)> = None;
    for n in names {
        let dir = data.join(&n);
        let meta = read_meta(&dir).with_context(|| {
            format!(
                "source `{n}`: no tokenized corpus in {}; run `mtkit tokenize {n} -o {}`",
                dir.display(),
                data.display()
            )
        })?;
        match &tok_hash {
            Some((h, first)) if *h != meta.tokenizer_sha256 => {
                bail!("sources `{first}` and `{n}` were tokenized with different tokenizers")
            }
            None => tok_hash = Some((meta.tokenizer_sha256.clone(), n.clone())),
            _ => {}
        }
        let train = Split::open(&dir, "train")?;
        if train.n_tokens() == 0 || train.n_docs() == 0 {
            bail!(
                "source `{n}`: the training split in {} holds no tokens; tokenize the corpus again with more documents or fewer --val-docs (`mtkit tokenize {n} -o {}`)",
                dir.display(),
                data.display()
            );
        }
        let val = Split::open(&dir, "val")?;
        out.insert(
            n,
            Source {
                train,
                val,
                has_prompt: meta.has_prompt,
            },
        );
    }
    Ok((out, tok_hash.map(|(h, _)| h)))
}

/// The batches of whole validation examples an evaluation scores: examples in order, `b` at a
/// time, until their lengths reach `budget` tokens.
pub(super) fn eval_example_batches(
    val: &Split,
    budget: u64,
    b: usize,
) -> Vec<Vec<(u64, u32, u32)>> {
    let mut batches = Vec::new();
    let mut budget = budget as i64;
    let mut i = 0;
    while i < val.n_docs() && budget > 0 {
        let docs: Vec<_> = (i..(i + b).min(val.n_docs())).map(|k| val.doc(k)).collect();
        i += docs.len();
        budget -= docs.iter().map(|d| d.1 as i64).sum::<i64>();
        batches.push(docs);
    }
    batches
}

/// Checks before any step that every validation set will have scored tokens at every
/// evaluation (each phase's seq_len), instead of failing at the first evaluation after
/// steps and checkpoints.
pub(super) fn check_validation(
    cfg: &RunConfig,
    phases: &[Phase],
    sources: &BTreeMap<String, Source>,
) -> Result<()> {
    for name in &cfg.run.validation {
        let src = &sources[name];
        let val = &src.val;
        if val.n_tokens < 2 {
            bail!("validation set `{name}` is empty; tokenize it with --val-docs > 0");
        }
        if !src.has_prompt {
            continue;
        }
        for p in phases {
            let scored = eval_example_batches(val, cfg.run.eval_tokens, p.batch_size as usize)
                .iter()
                .flatten()
                .any(|&(_, len, prompt)| has_scored_token(len, prompt, p.seq_len));
            if !scored {
                let shortest_prompt = (0..val.n_docs()).map(|k| val.doc(k).2).min().unwrap_or(0);
                bail!(
                    "validation set `{name}` has no scored tokens at seq_len {} (phase `{}`): \
                     the prompts of the examples evaluated fill the window (the shortest prompt \
                     is {shortest_prompt} tokens), and prompt tokens are not scored; raise seq_len \
                     or eval_tokens",
                    p.seq_len,
                    p.name
                );
            }
        }
    }
    Ok(())
}

/// Example order of an SFT epoch: a Fisher–Yates shuffle seeded by (seed, epoch).
pub fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = Rng::new(mix64(seed ^ 0x7366_7400) ^ mix64(epoch));
    for i in (1..n).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    order
}

/// Inputs and targets [B, seq_len] for whole examples: targets of prompt tokens and of
/// padding are -100 (ignored by the loss); inputs are padded with the EOS id. Returns also the
/// number of response (scored) tokens.
pub fn sft_tensors(src: &Split, docs: &[(u64, u32, u32)], seq_len: usize) -> (Tensor, Tensor, u64) {
    let b = docs.len();
    let mut xs = vec![src.eos_id as i64; b * seq_len];
    let mut ys = vec![-100i64; b * seq_len];
    let mut scored = 0u64;
    for (row, &(start, len, prompt)) in docs.iter().enumerate() {
        let n = (len as usize).min(seq_len + 1);
        for j in 0..n.saturating_sub(1) {
            xs[row * seq_len + j] = src.token(start + j as u64) as i64;
            // Target j is token j + 1: scored only when that token is past the prompt.
            if j + 1 >= prompt as usize {
                ys[row * seq_len + j] = src.token(start + j as u64 + 1) as i64;
                scored += 1;
            }
        }
    }
    (
        Tensor::from_slice(&xs).view([b as i64, seq_len as i64]),
        Tensor::from_slice(&ys).view([b as i64, seq_len as i64]),
        scored,
    )
}

impl Trainer {
    /// Token ids built on the host, on the device: one copy, from pinned memory and not
    /// waited for on CUDA (the host goes on queueing kernels).
    pub(super) fn upload(&self, host: Tensor) -> Tensor {
        if self.device.is_cuda() {
            host.pin_memory(self.device)
                .to_device_(self.device, Kind::Int64, true, false)
        } else {
            host
        }
    }

    /// Next non-SFT micro-batch: (inputs, targets) [B, T], views of one [B, T + 1] window
    /// tensor.
    pub(super) fn lm_batch(&mut self, phase: &Phase) -> (Tensor, Tensor) {
        let (b, t) = (phase.batch_size as usize, phase.seq_len as usize);
        let mut rng = Rng::new(self.state.rng);
        let mut windows = Vec::with_capacity(b * (t + 1));
        for _ in 0..b {
            let u = rng.next_f64();
            let mut acc = 0.0;
            let mut pick = &phase.mixture[phase.mixture.len() - 1].0;
            for (name, w) in &phase.mixture {
                acc += w;
                if u < acc {
                    pick = name;
                    break;
                }
            }
            for (name, w) in &phase.mixture {
                *self.state.requested.entry(name.clone()).or_default() += w * t as f64;
            }
            let src = &self.sources[pick].train;
            let cur = self.state.cursors.entry(pick.clone()).or_default();
            let w = src.window(*cur, t + 1);
            *cur += t as u64;
            *self.state.delivered.entry(pick.clone()).or_default() += t as u64;
            windows.extend_from_slice(&w);
        }
        self.state.rng = rng.state();
        let w = self.upload(Tensor::from_slice(&windows).view([b as i64, t as i64 + 1]));
        (w.narrow(1, 0, t as i64), w.narrow(1, 1, t as i64))
    }

    /// Next SFT micro-batch of whole examples, in a seeded shuffled order per epoch.
    pub(super) fn sft_batch(&mut self, phase: &Phase) -> (Tensor, Tensor) {
        let name = phase.mixture[0].0.clone();
        let src = &self.sources[&name].train;
        let usable = &self.sft_usable[&(name.clone(), phase.seq_len)];
        let n = usable.len() as u64;
        let mut examples = Vec::new();
        for _ in 0..phase.batch_size {
            let pos = self.state.sft_pos.entry(name.clone()).or_default();
            let (epoch, k) = (*pos / n, *pos % n);
            let order = epoch_order(n as usize, self.cfg.run.seed, epoch);
            examples.push(src.doc(usable[order[k as usize]] as usize));
            *pos += 1;
        }
        let (x, y, tokens) = sft_tensors(src, &examples, phase.seq_len as usize);
        *self.state.requested.entry(name.clone()).or_default() += tokens as f64;
        *self.state.delivered.entry(name).or_default() += tokens;
        let both = self.upload(Tensor::stack(&[x, y], 0));
        (both.get(0), both.get(1))
    }
}
