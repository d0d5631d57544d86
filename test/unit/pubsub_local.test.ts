// The PubSub contract on the local (single-node) pub/sub.
import { LocalPubSub } from "../../src/pubsub/local.ts";
import { pubsubContract } from "./contracts/pubsub_contract.ts";

pubsubContract(
  "local",
  async () => {
    let built = 0;
    return {
      async node(handler) {
        // Single node: the suite never asks for a second one; fail loudly if it does.
        if (++built > 1) throw new Error("the local pub/sub has one node");
        return new LocalPubSub(handler);
      },
      // Subscriptions take effect at once: there is no engine.
      async synced() {},
      async close() {},
    };
  },
  { multiNode: false },
);
