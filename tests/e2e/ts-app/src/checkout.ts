// The application code whose errors should read as TypeScript, not as the minified bundle.

export interface CartItem {
  price: number;
  quantity: number;
}

export interface Cart {
  items: CartItem[];
}

function cartTotal(cart: Cart): number {
  return cart.items.reduce((sum, item) => sum + item.price * item.quantity, 0);
}

export function applyCoupon(cart: Cart, code: string): number {
  const total = cartTotal(cart);
  if (!code.startsWith("SPRING")) {
    throw new Error(`Coupon ${code} does not apply to a total of ${total}`);
  }
  return total * 0.9;
}
