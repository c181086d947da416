//! Qdrant sizing: how a collection's shards and replicas spread over the nodes, what one
//! stored point keeps in RAM (float32 originals, quantized copy, HNSW graph), and how
//! many nodes a collection needs at a node's memory. The arithmetic follows Qdrant's
//! capacity-planning guide and its shard placement (`ShardDistributionProposal`: at most
//! one replica of a shard per node, every node given the same number of shard replicas).

use super::defaults as d;
use super::{CollectionPlan, QuantizationPlan, Sourced};
use crate::spec::{self, QuantizationType};

/// Bytes per dimension of a quantized copy: int8 for scalar, one bit for binary,
/// float32 / compression for product.
pub fn quantized_bytes_per_dimension(q: &spec::Quantization) -> f64 {
    match q.kind {
        QuantizationType::Scalar => 1.0,
        QuantizationType::Binary => 1.0 / 8.0,
        QuantizationType::Product => d::QDRANT_FLOAT32_BYTES / q.compression.map_or(1, |c| c.ratio()) as f64,
    }
}

fn quantization_name(q: &QuantizationPlan) -> String {
    match (q.kind, q.compression) {
        (QuantizationType::Scalar, _) => "scalar int8".into(),
        (QuantizationType::Binary, _) => "binary 1 bit".into(),
        (QuantizationType::Product, Some(c)) => format!("product x{}", c.ratio()),
        (QuantizationType::Product, None) => "product".into(),
    }
}

/// `1.5`, `0.125`, `153.6`: bytes as a message shows them (up to three decimals).
pub fn bytes_text(value: f64) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// RAM one stored point takes (one replica of it), with the formula that gives it.
///
/// In RAM are the float32 originals unless `on_disk`, and the quantized copy when it is
/// kept there (`always_ram`, or following originals that are in RAM); the sum is
/// multiplied by 1.5 for indexes, point versions and optimizer segments. With the
/// originals on disk, the HNSW graph (m = 16: 153.6 B a point) stays in RAM on its own.
pub fn bytes_per_point(dimensions: u64, on_disk: bool, quantization: Option<&QuantizationPlan>) -> (f64, String) {
    let dims = dimensions as f64;
    let mut parts: Vec<String> = Vec::new();
    let mut resident = 0.0;
    if !on_disk {
        resident += dims * d::QDRANT_FLOAT32_BYTES;
        parts.push(format!("{dimensions} dims x 4 B (float32)"));
    }
    if let Some(q) = quantization.filter(|q| q.in_ram) {
        resident += dims * q.bytes_per_dimension;
        parts.push(format!("{dimensions} dims x {} B ({})", bytes_text(q.bytes_per_dimension), quantization_name(q)));
    }
    let mut bytes = resident * d::QDRANT_OVERHEAD;
    let mut formula = match parts.len() {
        0 => String::new(),
        1 => format!("{} x 1.5", parts[0]),
        _ => format!("({}) x 1.5", parts.join(" + ")),
    };
    if on_disk {
        bytes += d::QDRANT_HNSW_BYTES_PER_POINT;
        let graph = format!("{} B HNSW graph (originals on disk)", bytes_text(d::QDRANT_HNSW_BYTES_PER_POINT));
        formula = if formula.is_empty() { graph } else { format!("{formula} + {graph}") };
    }
    (bytes, formula)
}

/// How a collection's shard replicas land on `nodes` nodes: (replicas placed per
/// shard, shard replicas on the busiest node).
pub fn spread(shards: u64, replication_factor: u64, nodes: u64) -> (u64, u64) {
    let nodes = nodes.max(1);
    let placed = replication_factor.min(nodes).max(1);
    (placed, shards.saturating_mul(placed).div_ceil(nodes))
}

/// In-RAM bytes of a collection on the busiest of `nodes` nodes: its share of the
/// vectors (`shard replicas held / shard_number`) x the bytes of a point, as the
/// capacity-planning formula computes it (a whole-point count differs by a point).
fn busiest_node_bytes(vectors: u64, shards: u64, replication_factor: u64, nodes: u64, per_point: f64) -> (u64, u64, u64) {
    let shards = shards.max(1);
    let (placed, per_node) = spread(shards, replication_factor, nodes);
    let bytes = vectors as f64 * per_node as f64 / shards as f64 * per_point;
    (placed, per_node, bytes.ceil() as u64)
}

/// Resolves one collection of a qdrant with `nodes` nodes.
pub fn collection(service_path: &str, name: &str, c: &spec::Collection, nodes: u64, memory_limit: Option<u64>) -> CollectionPlan {
    let path = format!("{service_path}.collections.{name}");
    let p = |key: &str| format!("{path}.{key}");
    let shard_number = match c.shard_number {
        Some(s) => Sourced::spec(s, p("shard_number")),
        None => Sourced::default(nodes.max(1), p("shard_number"), format!("Qdrant creates one shard per node: {}", nodes.max(1))),
    };
    let replication_factor = Sourced::or_default(c.replication_factor, p("replication_factor"), d::QDRANT_REPLICATION_FACTOR, "Qdrant replication_factor = 1");
    let write_consistency_factor =
        Sourced::or_default(c.write_consistency_factor, p("write_consistency_factor"), d::QDRANT_WRITE_CONSISTENCY_FACTOR, "Qdrant write_consistency_factor = 1");
    let on_disk = Sourced::or_default(c.on_disk, p("on_disk"), false, "Qdrant keeps vectors in RAM (on_disk = false)");
    let quantization = c.quantization.as_ref().map(|q| QuantizationPlan {
        kind: q.kind,
        compression: q.compression,
        always_ram: q.always_ram,
        bytes_per_dimension: quantized_bytes_per_dimension(q),
        in_ram: q.always_ram == Some(true) || !on_disk.value,
    });
    let (bytes_per_point, bytes_per_point_formula) = bytes_per_point(c.dimensions, on_disk.value, quantization.as_ref());
    let (placed_replicas, shards_per_node, memory_per_node) =
        busiest_node_bytes(c.vectors, shard_number.value, replication_factor.value, nodes, bytes_per_point);
    let points_per_node = (u128::from(c.vectors) * u128::from(shards_per_node)).div_ceil(u128::from(shard_number.value.max(1)));
    let shard_replica_bytes = (c.vectors.div_ceil(shard_number.value.max(1)) as f64 * bytes_per_point).ceil() as u64;
    let nodes_needed = memory_limit.and_then(|limit| {
        // Fewer nodes than replicas would leave shards under-replicated: start there.
        nodes_needed(replication_factor.value, limit, |n| {
            let shards = c.shard_number.unwrap_or(n);
            busiest_node_bytes(c.vectors, shards, replication_factor.value, n, bytes_per_point).2
        })
    });
    CollectionPlan {
        name: name.to_string(),
        path,
        vectors: c.vectors,
        dimensions: c.dimensions,
        distance: c.distance,
        shard_number,
        replication_factor,
        write_consistency_factor,
        on_disk,
        quantization,
        placed_replicas,
        shards_per_node,
        points_per_node: u64::try_from(points_per_node).unwrap_or(u64::MAX),
        bytes_per_point,
        bytes_per_point_formula,
        memory_per_node,
        nodes_needed,
        shard_replica_bytes,
    }
}

/// Every collection of a qdrant of `nodes` nodes, the RAM they take together on the
/// busiest node, and the fewest nodes that hold them all at `memory_limit`.
pub fn collections(service_path: &str, q: &spec::Qdrant, nodes: u64, memory_limit: Option<u64>) -> (Vec<CollectionPlan>, u64, Option<u64>) {
    let plans: Vec<CollectionPlan> = q.collections.iter().map(|(name, c)| collection(service_path, name, c, nodes, memory_limit)).collect();
    let total = plans.iter().fold(0u64, |acc, c| acc.saturating_add(c.memory_per_node));
    let start = plans.iter().map(|c| c.replication_factor.value).max().unwrap_or(1);
    let needed = memory_limit.filter(|_| !plans.is_empty()).and_then(|limit| {
        nodes_needed(start, limit, |n| {
            q.collections.values().zip(&plans).fold(0u64, |acc, (c, plan)| {
                let shards = c.shard_number.unwrap_or(n);
                acc.saturating_add(busiest_node_bytes(c.vectors, shards, plan.replication_factor.value, n, plan.bytes_per_point).2)
            })
        })
    });
    (plans, total, needed)
}

/// The fewest nodes, from `start` up, whose busiest node fits `limit`; None when no
/// count does. The busiest node's share only falls as nodes are added, until each node
/// holds a single shard replica: there it stops, and so does the search.
pub fn nodes_needed(start: u64, limit: u64, bytes_at: impl Fn(u64) -> u64) -> Option<u64> {
    // Qdrant's shard and replica counts stop at 65536; so does the search.
    const MOST: u64 = 65_536;
    let mut previous = u64::MAX;
    for n in start.max(1)..=MOST {
        let bytes = bytes_at(n);
        if bytes <= limit {
            return Some(n);
        }
        // A plateau that doubling the nodes does not lower is the floor.
        if bytes >= previous && bytes_at(n.saturating_mul(2)) >= bytes {
            return None;
        }
        previous = bytes;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_in_ram_is_the_capacity_planning_formula() {
        let (bytes, formula) = bytes_per_point(384, false, None);
        assert_eq!(bytes, 384.0 * 4.0 * 1.5);
        assert_eq!(formula, "384 dims x 4 B (float32) x 1.5");
        // The guide's example: 1,000,000 x 1024 dims x 4 B x 1.5 = 6,144,000,000 bytes.
        let (per_point, _) = bytes_per_point(1024, false, None);
        assert_eq!((1_000_000.0 * per_point) as u64, 6_144_000_000);
    }

    #[test]
    fn on_disk_and_quantization() {
        let scalar = QuantizationPlan { kind: QuantizationType::Scalar, compression: None, always_ram: Some(true), bytes_per_dimension: 1.0, in_ram: true };
        let (bytes, formula) = bytes_per_point(384, true, Some(&scalar));
        assert_eq!(bytes, 384.0 * 1.5 + 153.6);
        assert_eq!(formula, "384 dims x 1 B (scalar int8) x 1.5 + 153.6 B HNSW graph (originals on disk)");
        // Quantization with the originals in RAM keeps both copies.
        let (bytes, _) = bytes_per_point(384, false, Some(&scalar));
        assert_eq!(bytes, 384.0 * 5.0 * 1.5);
        let (bytes, formula) = bytes_per_point(384, true, None);
        assert_eq!(bytes, 153.6);
        assert_eq!(formula, "153.6 B HNSW graph (originals on disk)");
    }

    #[test]
    fn shard_replicas_spread_like_qdrant() {
        // 3 shards x 2 replicas on 3 nodes: 2 each.
        assert_eq!(spread(3, 2, 3), (2, 2));
        // on 4 nodes: 6 replicas, the busiest holds 2.
        assert_eq!(spread(3, 2, 4), (2, 2));
        // replication_factor above the node count: one replica per node.
        assert_eq!(spread(3, 3, 2), (2, 3));
        assert_eq!(spread(12, 2, 6), (2, 4));
    }

    #[test]
    fn nodes_needed_stops_where_more_nodes_do_not_help() {
        // 12 shards x 1 GiB each, replication 2: 24 shard replicas; a node holds 4 GiB.
        let at = |n: u64| spread(12, 2, n).1 * 1024;
        assert_eq!(nodes_needed(2, 4096, at), Some(6));
        // One shard replica alone is larger than a node: nothing fits.
        assert_eq!(nodes_needed(2, 1000, at), None);
        // The floor of one replica per node is reached at 24 nodes.
        assert_eq!(nodes_needed(2, 1024, at), Some(24));
    }
}
