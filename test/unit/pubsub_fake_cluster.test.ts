// The PubSub contract on an in-memory multi-node double, so the suite's multi-node tests run (and
// are known to hold on a correct backend) before a real multi-node pub/sub lands.
import { FakeClusterPubSub, FakeEngine } from "./contracts/fake_cluster_pubsub.ts";
import { pubsubContract } from "./contracts/pubsub_contract.ts";

pubsubContract(
  "fake cluster (in-memory double)",
  async () => {
    const engine = new FakeEngine();
    return {
      async node(handler) {
        return new FakeClusterPubSub(engine, handler);
      },
      async synced() {},
      async close() {},
    };
  },
  { multiNode: true },
);
