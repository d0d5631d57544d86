// The Broker contract on an in-memory double with history and sessions, so the suite's history
// and session tests run (and are known to hold on a correct broker) before a real one lands.
import { brokerContract } from "./contracts/broker_contract.ts";
import { FakeHistoryBroker } from "./contracts/fake_history_broker.ts";

brokerContract(
  "fake history (in-memory double)",
  async (pubsub) => ({
    broker: new FakeHistoryBroker(pubsub),
    async close() {},
  }),
  { history: true, sessions: true },
);
