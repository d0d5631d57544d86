// The Broker contract on the pass-through broker (no history, no sessions, no presence).
import { NoBroker } from "../../src/broker/none.ts";
import { brokerContract } from "./contracts/broker_contract.ts";

brokerContract(
  "none",
  async (pubsub) => ({
    broker: new NoBroker(pubsub),
    async close() {},
  }),
  { history: false, sessions: false, presence: false, clock: false },
);
