public enum Cordon { public static let version = "0.2.0" }
