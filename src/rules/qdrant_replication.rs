//! Rule `qdrant-replication`.

use super::{Check, finding, plural};
use crate::diag::Diagnostic;
use crate::plan::{CollectionPlan, Detail, Plan, ServicePlan};

declare_rule! {
    /// A Qdrant collection's shards and replicas cannot be placed as written.
    ///
    /// ## What it checks
    /// For each collection of each `qdrant` (its `replicas` are the cluster nodes):
    /// - `replication_factor` > nodes: Qdrant puts at most one replica of a shard on a
    ///   node, so each shard gets only as many replicas as there are nodes;
    /// - `shard_number` < nodes: shards are never split, so some nodes hold fewer shard
    ///   replicas than others, or none at all;
    /// - `write_consistency_factor` > `replication_factor`: a write must be acknowledged
    ///   by more replicas than a shard has.
    ///
    /// ## Why it matters
    /// The collection is created anyway. With too few nodes it stays under-replicated:
    /// the copy the operators count on does not exist, and losing one node loses the
    /// shards it held. With fewer shards than nodes the extra nodes add no write capacity
    /// and hold none or less of the data while the busiest node holds more (and
    /// `shard_number` cannot change after creation outside Qdrant Cloud's resharding).
    /// Qdrant lowers the write consistency to the replica count, so every write then
    /// needs every replica: one node down and writes to its shards fail.
    ///
    /// ## Example
    /// ```yaml
    /// vectors:
    ///   kind: qdrant
    ///   replicas: 2
    ///   collections:
    ///     voice_embeddings: { vectors: 2000000, dimensions: 384, distance: cosine,
    ///                         shard_number: 1, replication_factor: 3,
    ///                         write_consistency_factor: 4 }
    /// ```
    ///
    /// ## Fix
    /// Run at least `replication_factor` nodes (3 nodes with `replication_factor: 2` is
    /// the guide's smallest cluster that keeps serving with a node down), make
    /// `shard_number` a multiple of the node count (12 divides evenly across 1, 2, 3, 4,
    /// 6 and 12 nodes), and keep `write_consistency_factor` at most `replication_factor`
    /// (below it, writes survive a replica being down).
    ///
    /// ## Defaults
    /// shard_number = the node count when the collection is created, replication_factor 1,
    /// write_consistency_factor 1.
    ///
    /// ## References
    /// - https://qdrant.tech/documentation/scaling/distributed_deployment/
    /// - https://qdrant.tech/documentation/scaling/horizontal-scaling/
    /// - https://qdrant.tech/documentation/capacity-planning/#cluster-topology
    /// - https://qdrant.tech/documentation/operations/consistency/
    pub struct QdrantReplication { id: "qdrant-replication", severity: Error, core: false }
}

fn check_collection(service: &ServicePlan, nodes: u64, c: &CollectionPlan, out: &mut Vec<Diagnostic>) {
    let who = format!("collection `{}` of qdrant `{}`", c.name, service.name);
    let node_count = format!("{} ({})", plural(nodes, "node"), service.replicas.cite());
    let rf = &c.replication_factor;
    if rf.value > nodes {
        out.push(
            finding::<QdrantReplication>(
                rf.path(),
                format!(
                    "{who}: replication_factor {} ({}) > {node_count}: Qdrant puts at most one replica of a shard on a node, so each shard gets {} instead of {} and survives the loss of {}, not {}; the collection is created under-replicated",
                    rf.value,
                    rf.cite(),
                    plural(c.placed_replicas, "replica"),
                    rf.value,
                    plural(c.placed_replicas.saturating_sub(1), "node"),
                    rf.value - 1
                ),
            )
            .number("replication_factor", rf.value as f64)
            .number("nodes", nodes as f64)
            .fix(format!("lower {} to <= {nodes}, or run >= {} nodes ({} {nodes} -> {})", rf.path(), rf.value, service.replicas.path(), rf.value))
            .related(service.replicas.path(), plural(nodes, "node")),
        );
    }
    let shards = &c.shard_number;
    if shards.value < nodes {
        let placed = shards.value.saturating_mul(c.placed_replicas);
        let empty = nodes.saturating_sub(placed);
        let spread = if empty > 0 {
            format!("{} no replica of it", if empty == 1 { "1 node holds".to_string() } else { format!("{empty} nodes hold") })
        } else {
            format!("the busiest node holds {} of them ({}% of the collection)", c.shards_per_node, c.shards_per_node * 100 / shards.value.max(1))
        };
        let multiples: Vec<String> = [1, 2].iter().map(|k| (nodes * k).to_string()).collect();
        out.push(
            finding::<QdrantReplication>(
                shards.path(),
                format!(
                    "{who}: shard_number {} ({}) < {node_count}: shards are never split across nodes, so {} shards x {} = {placed} shard replicas on {} nodes: {spread}; writes spread over only {} shards, and a node past that adds no write capacity (shard_number is fixed at creation)",
                    shards.value,
                    shards.cite(),
                    shards.value,
                    plural(c.placed_replicas, "replica"),
                    nodes,
                    shards.value
                ),
            )
            .number("shard_number", shards.value as f64)
            .number("nodes", nodes as f64)
            .fix(format!("set {} to a multiple of {nodes} ({}) when the collection is created", shards.path(), multiples.join(" or ")))
            .related(service.replicas.path(), plural(nodes, "node")),
        );
    }
    let wcf = &c.write_consistency_factor;
    if wcf.value > rf.value {
        let keep = rf.value.saturating_sub(1).max(1);
        out.push(
            finding::<QdrantReplication>(
                wcf.path(),
                format!(
                    "{who}: write_consistency_factor {} ({}) > replication_factor {} ({}): a shard has only {} to acknowledge a write, so Qdrant lowers the factor to that and every write needs every replica: with one node down, writes to its shards fail",
                    wcf.value,
                    wcf.cite(),
                    rf.value,
                    rf.cite(),
                    plural(c.placed_replicas, "replica"),
                ),
            )
            .number("write_consistency_factor", wcf.value as f64)
            .number("replication_factor", rf.value as f64)
            .fix(format!(
                "lower {} to {keep}{}, or raise {} to >= {}",
                wcf.path(),
                if rf.value > 1 { " (writes then survive one replica down)" } else { "" },
                rf.path(),
                wcf.value.saturating_add(1)
            ))
            .related(rf.path(), format!("replication_factor {}", rf.value)),
        );
    }
}

impl Check for QdrantReplication {
    fn run(&self, plan: &Plan, out: &mut Vec<Diagnostic>) {
        for service in &plan.services {
            if let Detail::Qdrant(q) = &service.detail {
                for collection in &q.collections {
                    check_collection(service, q.nodes, collection, out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::findings_of;

    fn findings(nodes: u64, collection: &str) -> Vec<crate::diag::Diagnostic> {
        findings_of(
            "qdrant-replication",
            &format!("version: 1\nname: t\nservices:\n  vectors:\n    kind: qdrant\n    replicas: {nodes}\n    collections:\n      voice_embeddings: {{ vectors: 2000000, dimensions: 384, distance: cosine, {collection} }}\n"),
        )
    }

    #[test]
    fn the_guides_cluster_is_sound() {
        assert!(findings(3, "shard_number: 3, replication_factor: 2").is_empty());
        assert!(findings(3, "shard_number: 6, replication_factor: 3, write_consistency_factor: 3").is_empty());
        // Defaults: one shard per node, one replica, one ack.
        assert!(findings(5, "on_disk: false").is_empty());
    }

    #[test]
    fn replication_factor_above_the_nodes() {
        let found = findings(2, "shard_number: 2, replication_factor: 3");
        assert_eq!(found.len(), 1);
        let m = &found[0].message;
        assert!(m.contains("replication_factor 3 (services.vectors.collections.voice_embeddings.replication_factor) > 2 nodes (services.vectors.replicas)"), "{m}");
        assert!(m.contains("each shard gets 2 replicas instead of 3"), "{m}");
        assert_eq!(found[0].fix.as_deref(), Some("lower services.vectors.collections.voice_embeddings.replication_factor to <= 2, or run >= 3 nodes (services.vectors.replicas 2 -> 3)"));
        assert_eq!(findings(3, "shard_number: 3, replication_factor: 3").len(), 0);
    }

    #[test]
    fn fewer_shards_than_nodes() {
        // 2 shards x 1 replica on 3 nodes: one node holds nothing.
        let found = findings(3, "shard_number: 2");
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("2 shards x 1 replica = 2 shard replicas on 3 nodes: 1 node holds no replica of it"), "{}", found[0].message);
        assert_eq!(found[0].fix.as_deref(), Some("set services.vectors.collections.voice_embeddings.shard_number to a multiple of 3 (3 or 6) when the collection is created"));
        // 2 shards x 2 replicas on 3 nodes: every node holds one, the busiest two.
        let found = findings(3, "shard_number: 2, replication_factor: 2");
        assert!(found[0].message.contains("the busiest node holds 2 of them (100% of the collection)"), "{}", found[0].message);
        assert!(findings(3, "shard_number: 3").is_empty());
    }

    #[test]
    fn write_consistency_above_replication() {
        let found = findings(3, "shard_number: 3, replication_factor: 2, write_consistency_factor: 3");
        assert_eq!(found.len(), 1);
        let m = &found[0].message;
        assert!(m.contains("write_consistency_factor 3 (services.vectors.collections.voice_embeddings.write_consistency_factor) > replication_factor 2"), "{m}");
        assert!(m.contains("every write needs every replica"), "{m}");
        assert!(found[0].fix.as_deref().unwrap().starts_with("lower services.vectors.collections.voice_embeddings.write_consistency_factor to 1 (writes then survive one replica down)"));
        // Defaulted replication_factor is cited as the default.
        let found = findings(3, "write_consistency_factor: 2");
        assert!(found[0].message.contains("replication_factor 1 (services.vectors.collections.voice_embeddings.replication_factor not set; default: Qdrant replication_factor = 1)"), "{}", found[0].message);
    }

    #[test]
    fn all_three_at_once() {
        let found = findings(2, "shard_number: 1, replication_factor: 3, write_consistency_factor: 4");
        assert_eq!(found.len(), 3);
    }
}
