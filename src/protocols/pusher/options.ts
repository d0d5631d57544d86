// Option rows: The Pusher protocol adapter.
import type { Config, OptionSpec } from "../../config/schema.ts";

/** The webhooks Pusher sends that anycable-ts sends too. */
export const WEBHOOK_EVENTS = [
  "channel_occupied",
  "channel_vacated",
  "member_added",
  "member_removed",
  "client_event",
] as const;
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];

export const PUSHER_OPTIONS = [
  {
    name: "pusher_app_id",
    key: "pusher_app_id",
    type: "string",
    default: "",
    env: ["ANYCABLE_PUSHER_APP_ID"],
    toml: "pusher.app_id",
    category: "PUSHER:",
    description: "Application ID for Pusher protocol clients",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "pusher_secret",
    key: "pusher_secret",
    type: "string",
    default: "",
    env: ["ANYCABLE_PUSHER_SECRET"],
    toml: "pusher.secret",
    category: "PUSHER:",
    description: "Pusher application secret (defaults to secret)",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "pusher_app_key",
    key: "pusher_app_key",
    type: "string",
    default: "",
    env: ["ANYCABLE_PUSHER_APP_KEY"],
    toml: "pusher.app_key",
    category: "PUSHER:",
    description: "Application key for Pusher protocol clients",
    hidden: false,
    deprecated: null,
    served: true,
  },
  {
    name: "pusher_api_port",
    key: "pusher_api_port",
    type: "int",
    default: 0,
    env: ["ANYCABLE_PUSHER_API_PORT"],
    toml: "pusher.api_port",
    category: "PUSHER:",
    description: "Port of the Pusher HTTP API (0 means the main server port)",
    hidden: false,
    deprecated: null,
    served: true,
    min: 0,
    max: 65535,
  },
  {
    name: "pusher_webhook_url",
    key: "pusher_webhook_url",
    type: "string",
    default: "",
    env: ["ANYCABLE_PUSHER_WEBHOOK_URL"],
    toml: "pusher.webhook_url",
    category: "PUSHER:",
    description: "URL that receives Pusher webhooks, signed with the Pusher secret (empty: no webhooks)",
    hidden: false,
    deprecated: null,
    served: true,
    extension: true,
  },
  {
    name: "pusher_webhook_events",
    key: "pusher_webhook_events",
    type: "list",
    default: WEBHOOK_EVENTS,
    env: ["ANYCABLE_PUSHER_WEBHOOK_EVENTS"],
    toml: "pusher.webhook_events",
    category: "PUSHER:",
    description: "Pusher webhook events to send",
    hidden: false,
    deprecated: null,
    served: true,
    choices: WEBHOOK_EVENTS,
    extension: true,
  },
] as const satisfies readonly OptionSpec[];

export interface Options {
  /** Both an app id and an app key are set (anycable-go's rule). */
  enabled: boolean;
  appId: string;
  appKey: string;
  /** --pusher_secret, else --secret ("" = no signatures verify: private and presence channels refuse). */
  secret: string;
  /** The HTTP API's port (the main port when --pusher_api_port is 0). */
  apiPort: number;
  webhookUrl: string;
  webhookEvents: readonly WebhookEvent[];
}

export function fromConfig(c: Config): Options {
  return {
    enabled: c.pusher_app_id !== "" && c.pusher_app_key !== "",
    appId: c.pusher_app_id,
    appKey: c.pusher_app_key,
    secret: c.derived.pusherSecret,
    apiPort: c.pusher_api_port === 0 ? c.port : c.pusher_api_port,
    webhookUrl: c.pusher_webhook_url,
    webhookEvents: c.pusher_webhook_events.filter((e): e is WebhookEvent =>
      (WEBHOOK_EVENTS as readonly string[]).includes(e),
    ),
  };
}
