//! Rule `qdrant-memory`.

use super::{Check, finding, plural, size};
use crate::diag::Diagnostic;
use crate::plan::qdrant::{bytes_per_point, bytes_text};
use crate::plan::{CollectionPlan, Detail, Plan, QdrantPlan, QuantizationPlan, ServicePlan};
use crate::spec::QuantizationType;

declare_rule! {
    /// A Qdrant node's share of the in-RAM vectors exceeds its memory.
    ///
    /// ## What it checks
    /// For each `qdrant` whose node memory is known (`resources.memory`, else the memory
    /// of its machine), the RAM the busiest node needs for its share of every collection
    /// must fit in it. Per collection that share is
    /// `vectors x dimensions x 4 B x 1.5 x replication_factor / nodes`: float32 originals,
    /// and 50% more for the indexes, point versions and the optimizer's temporary
    /// segments. What `on_disk` and quantization change:
    /// - `on_disk: true`: the originals are memory-mapped from disk and leave the RAM
    ///   budget; the HNSW graph stays (m = 16: `16 x 2 x 4 B x 1.2` = 153.6 B a point).
    /// - quantization adds a compressed copy: int8 for `scalar` (1 B a dimension),
    ///   1 bit for `binary` (1/8 B), `4 B / compression` for `product` (x4..x64). It is in
    ///   RAM when `always_ram: true`, or when it follows originals that are in RAM; it
    ///   lowers the RAM only together with `on_disk: true` (with the originals in RAM
    ///   both copies are held).
    ///
    /// Shards are not split: the busiest node holds
    /// `ceil(shard_number x replicas / nodes)` shard replicas, each `vectors /
    /// shard_number` points, and Qdrant puts at most one replica of a shard on a node.
    /// When the shards divide evenly this is exactly the formula above.
    ///
    /// ## Why it matters
    /// Past the limit the kernel OOM-kills the Qdrant process; in a cluster the node's
    /// replicas go dead and the others must carry its shards (a node that is OOM-killed
    /// while loading comes back in recovery mode, `Qdrant was killed during
    /// initialization. Most likely it's Out-of-Memory`). With vectors memory-mapped the
    /// page cache evicts them instead, and searches collapse to disk reads: the
    /// capacity-planning guide's rule of thumb is that half the vectors in RAM doubles the
    /// latency.
    ///
    /// ## Example
    /// ```yaml
    /// vectors:
    ///   kind: qdrant
    ///   replicas: 3
    ///   resources: { memory: 4GiB }
    ///   collections:    # 20,000,000 x 384 x 4 B x 1.5 x 2 / 3 = 28.6GiB per node
    ///     voice_embeddings: { vectors: 20000000, dimensions: 384, distance: cosine,
    ///                         shard_number: 3, replication_factor: 2 }
    /// ```
    ///
    /// ## Fix
    /// Add nodes (with `shard_number` a multiple of the node count, so the new nodes get
    /// shards), raise the node memory, or move the originals to disk with quantization
    /// kept in RAM (`on_disk: true`, `quantization: { type: scalar, always_ram: true }`:
    /// 1 B a dimension instead of 4, rescoring from disk). The message gives the node
    /// count, the memory and the on-disk figure for the spec's numbers. The guide advises
    /// keeping a node under about 80% of its memory.
    ///
    /// ## Defaults
    /// replication_factor 1, shard_number = the node count at creation, on_disk false, no
    /// quantization, hnsw m 16 (Qdrant 1.19 config/config.yaml and collection defaults).
    ///
    /// ## References
    /// - https://qdrant.tech/documentation/capacity-planning/
    /// - https://qdrant.tech/documentation/manage-data/quantization/
    /// - https://qdrant.tech/documentation/manage-data/storage/
    /// - https://qdrant.tech/documentation/scaling/distributed_deployment/
    pub struct QdrantMemory { id: "qdrant-memory", severity: Warning, core: false }
}

/// `vectors x per-point x replication_factor / nodes = bytes`, or the busiest node's
/// shard replicas when the shards do not divide evenly.
pub fn share_arithmetic(collection: &CollectionPlan, nodes: u64) -> String {
    let c = collection;
    let per_point = if c.bytes_per_point_formula.contains(" + ") && !c.bytes_per_point_formula.starts_with('(') {
        format!("({})", c.bytes_per_point_formula)
    } else {
        c.bytes_per_point_formula.clone()
    };
    let replicas = if c.placed_replicas < c.replication_factor.value {
        format!("{} replicas (replication_factor {} > {} nodes: one replica a node)", c.placed_replicas, c.replication_factor.value, nodes)
    } else {
        format!("replication_factor {}", c.replication_factor.value)
    };
    let total_replicas = c.shard_number.value.saturating_mul(c.placed_replicas);
    if c.shards_per_node.saturating_mul(nodes) == total_replicas {
        format!("{} vectors x {per_point} x {replicas} / {} = {}", c.vectors, plural(nodes, "node"), size(c.memory_per_node))
    } else {
        format!(
            "{} shards x {replicas} = {total_replicas} shard replicas on {}: the busiest holds {} of them, {} points x {} B ({per_point}) = {}",
            c.shard_number.value,
            plural(nodes, "node"),
            c.shards_per_node,
            c.points_per_node,
            bytes_text(c.bytes_per_point),
            size(c.memory_per_node)
        )
    }
}

/// RAM per node of a collection with its originals on disk and a scalar quantized copy
/// pinned in RAM (the fix the guide gives), at the same spread.
fn on_disk_scalar_bytes(c: &CollectionPlan) -> u64 {
    let scalar = QuantizationPlan { kind: QuantizationType::Scalar, compression: None, always_ram: Some(true), bytes_per_dimension: 1.0, in_ram: true };
    let (per_point, _) = bytes_per_point(c.dimensions, true, Some(&scalar));
    (c.points_per_node as f64 * per_point).ceil() as u64
}

fn check_service(service: &ServicePlan, q: &QdrantPlan, out: &mut Vec<Diagnostic>) {
    let Some(limit) = &q.memory_limit else { return };
    if q.memory_per_node <= limit.value || q.collections.is_empty() {
        return;
    }
    let shares: Vec<String> = q.collections.iter().map(|c| format!("`{}`: {}", c.name, share_arithmetic(c, q.nodes))).collect();
    let total = if q.collections.len() > 1 { format!("; together {}", size(q.memory_per_node)) } else { String::new() };
    let message = format!(
        "qdrant `{}`: each node needs {} for its share of the in-RAM vectors but has {} ({}): {}{total}; past the limit the kernel OOM-kills the node and its shard replicas go dead (memory-mapped vectors are evicted instead, and searches fall to disk reads)",
        service.name,
        size(q.memory_per_node),
        size(limit.value),
        limit.cite(),
        shares.join("; "),
    );
    let mut fixes = Vec::new();
    match q.nodes_needed {
        Some(n) if n > q.nodes => fixes.push(format!("run >= {n} nodes ({} {} -> {n}, with shard_number a multiple of it)", service.replicas.path(), q.nodes)),
        _ => {}
    }
    fixes.push(format!("raise {} to >= {}MiB", limit.path(), q.memory_per_node.div_ceil(1024 * 1024)));
    if let Some(biggest) = q
        .collections
        .iter()
        .filter(|c| !(c.on_disk.value && c.quantization.as_ref().is_some_and(|qz| qz.in_ram)))
        .max_by_key(|c| c.memory_per_node)
    {
        let after = q.memory_per_node - biggest.memory_per_node + on_disk_scalar_bytes(biggest);
        fixes.push(format!(
            "or serve `{}` from disk with scalar quantization in RAM ({}.on_disk: true, quantization: {{ type: scalar, always_ram: true }}): {} per node",
            biggest.name,
            biggest.path,
            size(after)
        ));
    }
    let mut diagnostic = finding::<QdrantMemory>(limit.path(), message)
        .number("memory_per_node", q.memory_per_node as f64)
        .number("memory_limit", limit.value as f64)
        .number("nodes", q.nodes as f64)
        .fix(fixes.join(", "));
    if let Some(n) = q.nodes_needed {
        diagnostic = diagnostic.number("nodes_needed", n as f64);
    }
    for c in &q.collections {
        diagnostic = diagnostic.related(c.path.clone(), format!("{} per node", size(c.memory_per_node)));
    }
    out.push(diagnostic);
}

impl Check for QdrantMemory {
    fn run(&self, plan: &Plan, out: &mut Vec<Diagnostic>) {
        for service in &plan.services {
            if let Detail::Qdrant(q) = &service.detail {
                check_service(service, q, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::findings_of;

    fn findings(qdrant: &str) -> Vec<crate::diag::Diagnostic> {
        findings_of("qdrant-memory", &format!("version: 1\nname: t\nservices:\n  vectors:\n    kind: qdrant\n{qdrant}"))
    }

    const GUIDE: &str = "    replicas: 3\n    resources: { memory: MEM }\n    collections:\n      voice_embeddings: { vectors: VECTORS, dimensions: 384, distance: cosine, shard_number: 3, replication_factor: 2EXTRA }\n";

    fn guide(memory: &str, vectors: &str, extra: &str) -> String {
        GUIDE.replace("MEM", memory).replace("VECTORS", vectors).replace("EXTRA", extra)
    }

    #[test]
    fn the_formula_with_the_real_numbers() {
        // 20,000,000 x 384 x 4 x 1.5 x 2 / 3 = 30,720,000,000 B = 28.61GiB.
        let found = findings(&guide("8GiB", "20000000", ""));
        assert_eq!(found.len(), 1);
        let m = &found[0].message;
        assert!(
            m.contains("`voice_embeddings`: 20000000 vectors x 384 dims x 4 B (float32) x 1.5 x replication_factor 2 / 3 nodes = 28.61GiB"),
            "{m}"
        );
        assert!(m.contains("each node needs 28.61GiB") && m.contains("has 8GiB (services.vectors.resources.memory)"), "{m}");
        assert_eq!(found[0].numbers["memory_per_node"], 30_720_000_000.0);
        let fix = found[0].fix.as_deref().unwrap();
        // 12 shard replicas... shard_number 3 is written: beyond 6 nodes a node holds one
        // replica of 1/3 of the vectors = 14.3GiB > 8GiB: no node count fits.
        assert!(!fix.contains("run >="), "{fix}");
        assert!(fix.contains("raise services.vectors.resources.memory to >= 29297MiB"), "{fix}");
        // on disk with int8 in RAM: 13,333,334 points x (384 x 1 x 1.5 + 153.6) B = 9.06GiB
        assert!(fix.contains("services.vectors.collections.voice_embeddings.on_disk: true") && fix.contains("9.06GiB per node"), "{fix}");
    }

    #[test]
    fn boundary_at_the_limit() {
        // 2,000,000 x 2304 B x 2 / 3 = 3,072,000,000 B.
        assert!(findings(&guide("3072000000b", "2000000", "")).is_empty());
        assert_eq!(findings(&guide("3071999999b", "2000000", "")).len(), 1);
    }

    #[test]
    fn on_disk_and_quantization_lower_the_share() {
        // All in RAM: 28.61GiB; on disk with int8 pinned: 9.63GiB; on disk alone: the graph.
        assert_eq!(findings(&guide("10GiB", "20000000", "")).len(), 1);
        assert!(findings(&guide("10GiB", "20000000", ", on_disk: true, quantization: { type: scalar, always_ram: true }")).is_empty());
        assert!(findings(&guide("2GiB", "20000000", ", on_disk: true")).is_empty());
        // Quantization alone keeps the originals in RAM as well: (4 + 1) B a dimension.
        let found = findings(&guide("32GiB", "20000000", ", quantization: { type: scalar }"));
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("(384 dims x 4 B (float32) + 384 dims x 1 B (scalar int8)) x 1.5"), "{}", found[0].message);
        // Binary quantization pinned, originals on disk: 384 / 8 B x 1.5 + 153.6 B.
        let found = findings(&guide("1GiB", "20000000", ", on_disk: true, quantization: { type: binary, always_ram: true }"));
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("(384 dims x 0.125 B (binary 1 bit) x 1.5 + 153.6 B HNSW graph (originals on disk))"), "{}", found[0].message);
        // Product x16 pinned: 0.25 B a dimension.
        let found = findings(&guide("1GiB", "20000000", ", on_disk: true, quantization: { type: product, compression: x16, always_ram: true }"));
        assert!(found[0].message.contains("384 dims x 0.25 B (product x16)"), "{}", found[0].message);
    }

    #[test]
    fn uneven_shards_count_the_busiest_node() {
        // 3 shards x 2 replicas on 4 nodes: the busiest holds 2 of 6, i.e. 2/3 of the points.
        let spec = guide("2GiB", "2000000", "").replace("replicas: 3", "replicas: 4");
        let found = findings(&spec);
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("3 shards x replication_factor 2 = 6 shard replicas on 4 nodes: the busiest holds 2 of them, 1333334 points x 2304 B"), "{}", found[0].message);
    }

    #[test]
    fn node_count_in_the_fix_and_unknown_memory() {
        // Default shard_number follows the node count: 6,000,000 x 2304 B / n <= 4GiB -> n >= 4.
        let spec = "    replicas: 2\n    resources: { memory: 4GiB }\n    collections:\n      docs: { vectors: 6000000, dimensions: 384, distance: dot }\n";
        let found = findings(spec);
        assert_eq!(found.len(), 1);
        assert!(found[0].fix.as_deref().unwrap().starts_with("run >= 4 nodes (services.vectors.replicas 2 -> 4"), "{:?}", found[0].fix);
        assert!(findings("    replicas: 2\n    collections:\n      docs: { vectors: 60000000, dimensions: 384, distance: dot }\n").is_empty());
    }

    #[test]
    fn machine_memory_is_the_limit_without_a_container_limit() {
        let yaml = "version: 1\nname: t\nmachines:\n  vec: { count: 3, memory: 2GiB }\nservices:\n  vectors:\n    kind: qdrant\n    machine: vec\n    replicas: 3\n    collections:\n      c: { vectors: 2000000, dimensions: 384, distance: cosine, replication_factor: 2 }\n";
        let found = crate::rules::findings_of("qdrant-memory", yaml);
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("has 2GiB (services.vectors.resources.memory = machines.vec.memory)"), "{}", found[0].message);
    }
}
