public enum Cordon { public static let version = "0.1.0" }
