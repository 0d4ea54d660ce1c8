"""Small shared builders for the core tests."""

import numpy as np

from mlora_tf.data.dataset import MultiDomainDataset


def tiny_dataset(n_domains=2, rows=(600, 200, 200), n_users=50, n_items=40, seed=0):
    """A random MultiDomainDataset with every domain in every split (labels mixed)."""
    rng = np.random.default_rng(seed)
    splits = {}
    for split, n in zip(("train", "val", "test"), rows):
        domain = np.sort(rng.integers(0, n_domains, n)).astype("int64")
        domain[: n_domains * 4] = np.repeat(np.arange(n_domains), 4)
        domain.sort()
        label = (rng.random(n) < 0.3).astype("float32")
        for d in range(n_domains):  # both classes in every domain
            idx = np.flatnonzero(domain == d)
            label[idx[0]], label[idx[1]] = 1.0, 0.0
        splits[split] = {
            "uid": rng.integers(1, n_users, n).astype("int64"),
            "pid": rng.integers(1, n_items, n).astype("int64"),
            "domain": domain,
            "label": label,
        }
    return MultiDomainDataset(
        name="tiny",
        n_domains=n_domains,
        vocab_sizes={"uid": n_users, "pid": n_items, "domain": n_domains},
        domain_names=[f"d{i}" for i in range(n_domains)],
        splits=splits,
        info={},
    )


def graph_op_types(concrete):
    """Every op type of a concrete function's graph, its nested functions' included."""
    graph_def = concrete.graph.as_graph_def()
    types = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        types.update(node.op for node in function.node_def)
    return types
