// The browser entry: @sentry/browser with the DSN from the page's hash, and a checkout that fails.
import * as Sentry from "@sentry/browser";
import { applyCoupon } from "./checkout";

Sentry.init({ dsn: location.hash.slice(1), release: "shop@3.0.0" });

export function checkout(code: string): string | undefined {
  try {
    applyCoupon({ items: [{ price: 12, quantity: 2 }] }, code);
    return undefined;
  } catch (error) {
    return Sentry.captureException(error);
  }
}

export function flush(): PromiseLike<boolean> {
  return Sentry.flush(5000);
}
