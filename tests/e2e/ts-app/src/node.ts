// The Node entry: @sentry/node with the DSN from the environment, and a checkout that fails.
// Prints {"eventId": …}.
import * as Sentry from "@sentry/node";
import { applyCoupon } from "./checkout";

Sentry.init({ dsn: process.env.FAULTLINE_DSN, release: "shop@3.0.0" });

async function main(): Promise<void> {
  let eventId: string | undefined;
  try {
    applyCoupon({ items: [{ price: 12, quantity: 2 }] }, "WINTER");
  } catch (error) {
    eventId = Sentry.captureException(error);
  }
  if (!(await Sentry.flush(5000))) {
    throw new Error("the event was not sent");
  }
  console.log(JSON.stringify({ eventId }));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
