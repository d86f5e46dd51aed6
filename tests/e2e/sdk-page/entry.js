// The page's copy of the SDK: @sentry/browser as an application bundles it, exposed as
// window.Sentry so the test page can call it.
export * from "@sentry/browser";
